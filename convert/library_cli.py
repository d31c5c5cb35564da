"""Subcommands cluster, enroll, forget, scan and find of `python -m convert`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from edge.config import Config
from edge.errors import UserError

log = logging.getLogger("convert")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not 0.0 < value < 2.0:
        raise argparse.ArgumentTypeError(f"{text}: a cosine distance between 0 and 2")
    return value


def default_index() -> Path:
    """$XDG_DATA_HOME/edge-faces/library.db (~/.local/share/...): one index per user."""
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "edge-faces" / "library.db"


def add_parsers(sub: argparse._SubParsersAction, models: Path) -> None:
    """Add the library subcommands to the `python -m convert` parser."""
    from convert.cluster import DEFAULT_DISTANCE

    c = sub.add_parser("cluster", help="group unknown face crops into cluster_NNN/ folders")
    c.add_argument("unknown_dir", metavar="UNKNOWN_DIR")
    c.add_argument("--out", metavar="DIR", help="output folder (default: UNKNOWN_DIR_clusters)")
    c.add_argument(
        "--distance",
        type=_distance,
        default=DEFAULT_DISTANCE,
        metavar="D",
        help=f"average cosine distance that still joins two groups ({DEFAULT_DISTANCE})",
    )
    n = sub.add_parser("enroll", help="add photos of a person to the dataset and retrain")
    n.add_argument("name", metavar="NAME")
    n.add_argument("photos", metavar="PHOTOS", nargs="+", help="image files or folders")
    f = sub.add_parser("forget", help="remove a person from the dataset and retrain")
    f.add_argument("name", metavar="NAME")
    for q in (n, f):
        q.add_argument(
            "--dataset", metavar="DIR", help="dataset folder (default: the model's, in faces.json)"
        )
        q.add_argument("--backbone", help="backbone to retrain with (default: the model's)")
        q.add_argument("--weights", metavar="FILE", help="weights for a vgg* backbone")
    s = sub.add_parser("scan", help="index every face of a photo tree into SQLite (resumable)")
    s.add_argument("photos", metavar="PHOTOS")
    s.add_argument(
        "--index",
        default=str(default_index()),
        metavar="FILE",
        help="SQLite index to create/update (default: %(default)s)",
    )
    s.add_argument("--jobs", type=_positive_int, default=0, metavar="N", help="worker processes")
    d = sub.add_parser("find", help="photos showing NAME, newest first, one path per line")
    d.add_argument("name", metavar="NAME")
    d.add_argument(
        "--index", default=str(default_index()), metavar="FILE", help="(default: %(default)s)"
    )
    d.add_argument("--html", metavar="FILE", help="also write a page of thumbnails")
    for q in (c, n, f, s):
        q.add_argument(
            "--model", metavar="FILE", help=f"face model (default {models / 'faces.tflite'})"
        )
    for q in (c, n, f, s, d):
        q.add_argument("--config", metavar="FILE", help="config YAML (detector settings)")


def _model(args: argparse.Namespace, cfg: Config) -> Path:
    return Path(args.model or cfg.recognize.model)


def run(args: argparse.Namespace, cfg: Config, models: Path) -> dict | str:
    """Run one library subcommand: its JSON summary, or for `find` the lines to print."""
    if args.command == "cluster":
        return _cluster(args, cfg)
    if args.command == "enroll":
        from convert.enroll import enroll

        return enroll(
            args.name,
            args.photos,
            cfg,
            _model(args, cfg),
            models,
            args.dataset,
            args.backbone,
            args.weights,
        )
    if args.command == "forget":
        from convert.enroll import forget

        return forget(
            args.name, cfg, _model(args, cfg), models, args.dataset, args.backbone, args.weights
        )
    if args.command == "scan":
        return _scan(args, cfg)
    return _find(args)


def _cluster(args: argparse.Namespace, cfg: Config) -> dict:
    from convert.cluster import cluster_embeddings, load_items, write_clusters, write_overview

    folder = Path(args.unknown_dir)
    out = Path(args.out) if args.out else folder.parent / f"{folder.name}_clusters"
    items = load_items(folder, cfg, args.model)
    if not items:
        raise UserError(f"{folder}: no faces to cluster (no captures, no photos with a face)")
    import numpy as np

    labels = cluster_embeddings(np.stack([i.embedding for i in items]), args.distance)
    sizes = write_clusters(items, labels, out)
    overview = write_overview(items, labels, out)
    clusters = {k: v for k, v in sizes.items() if k != "unclustered"}
    log.info("%d faces -> %d clusters in %s; look at %s", len(items), len(clusters), out, overview)
    return {
        "faces": len(items),
        "clusters": len(clusters),
        "unclustered": sizes.get("unclustered", 0),
        "distance": args.distance,
        "out": str(out),
        "overview": str(overview),
        "sizes": sizes,
    }


def _scan(args: argparse.Namespace, cfg: Config) -> dict:
    from convert.library import scan

    try:
        Path(args.index).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--index {args.index}: cannot create its folder ({exc.strerror})"
        ) from None
    report = scan(args.photos, args.index, cfg, str(_model(args, cfg)), args.jobs)
    summary = {
        **asdict(report),
        "seconds": round(report.seconds, 2),
        "photos_per_s": round(report.photos_per_s, 2),
        "index": args.index,
    }
    if report.interrupted:
        sys.stdout.write(json.dumps(summary) + "\n")
        raise KeyboardInterrupt
    return summary


def _find(args: argparse.Namespace) -> str:
    from convert.library import find, write_html

    results = find(args.name, args.index)
    if args.html:
        try:
            write_html(args.name, results, args.html)
        except OSError as exc:
            raise UserError(f"{args.html}: cannot write ({exc.strerror or exc})") from None
        log.info("wrote %s (%d photos)", args.html, len(results))
    return "".join(f"{photo}\n" for photo, _, _ in results)
