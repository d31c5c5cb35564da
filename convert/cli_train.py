"""`convert train` and `convert eval`: the steps from a photo folder to faces.tflite + faces.json."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from convert.backbone import load_backbone
from convert.dataset import (
    UNKNOWN_DIR,
    CropCache,
    crawl,
    default_cache_dir,
    load_dataset,
    per_person,
    person_of,
)
from convert.tfquiet import import_tensorflow_quietly
from convert.train import embed_samples
from edge.config import Config
from edge.errors import UserError
from edge.facestore import FaceStore
from edge.head import calibrate, fit_head, held_out_scores, rates
from edge.library import FaceLibrary
from edge.library.files import temp_beside
from edge.recognize import labels_path
from edge.vectors import cosine_distance

log = logging.getLogger("convert")

FEW_PHOTOS = 3  # fewer usable photos than this: the person is warned about


def person_table(ds, rows: list[dict]) -> str:
    """The per-person summary `convert train` ends with: counts, then each skipped file."""
    lines = [f"{'person':<28} {'photos':>6} {'used':>5} {'skipped':>7}  note"]
    for r in rows:
        note = ""
        if "left_out" in r:
            note = f"LEFT OUT of the model: {r['left_out']}"
        elif r["person"] != UNKNOWN_DIR and r["used"] < FEW_PHOTOS:
            note = f"warning: {r['used']} usable photo(s); {FEW_PHOTOS}+ recommended"
        elif r["person"] == UNKNOWN_DIR:
            note = "strangers: teach the model whom never to name"
        lines.append(
            f"{r['person']:<28} {r['given']:>6} {r['used']:>5} {len(r['skipped']):>7}  {note}".rstrip()
        )
    for r in rows:
        lines += [f"  skipped {s['file']}: {s['reason']}" for s in r["skipped"]]
    outside = [(p, why) for p, why in ds.skipped if person_of(ds.root, p) is None]
    lines += [f"  skipped {p.relative_to(ds.root)}: {why}" for p, why in outside]
    return "\n".join(lines) + "\n"


MIN_STRANGER_REJECTION = (
    0.8  # held-out strangers a new model must reject (--min-stranger-rejection)
)


def _require_people(root: Path, labels: list[str], usable: int, skipped: int) -> None:
    """One line and exit when the photos cannot make a model (at least 2 people)."""
    if not usable:
        raise UserError(
            f"{root}: no usable photos (expected {root}/<Name>/*.jpg with one face each; "
            f"{skipped} file(s) skipped)"
        )
    if len(labels) < 2:
        raise UserError(
            f"{root}: need photos of at least 2 people, found {len(labels)} "
            f"({', '.join(labels) or 'none'})"
        )


def _require_rejection(root: Path, measured: float | None, floor: float) -> None:
    """One line and exit, before anything is written, when the model would name strangers."""
    if measured is not None and measured < floor:
        raise UserError(
            f"{root}: measured stranger rejection {measured:.2f} is below the floor {floor:.2f}, "
            f"no model written (is one person's folder holding other people's photos? "
            f"--min-stranger-rejection {measured:.2f} writes it anyway)"
        )
    if measured is not None and measured < MIN_STRANGER_REJECTION:
        log.warning(
            "%s: writing a model that rejects only %.2f of held-out strangers "
            "(--min-stranger-rejection %.2f; the default floor is %.2f)",
            root,
            measured,
            floor,
            MIN_STRANGER_REJECTION,
        )


def model_target(out: str | Path) -> Path:
    """The model file `--out` means: NAME.tflite itself, else faces.tflite in that folder.

    Creates the folder; UserError (one line) for a path that cannot hold a model.
    """
    out = Path(out)
    if out.suffix == ".tflite":
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; remove it or give another file name")
        model, folder = out, out.parent
    elif out.exists() and not out.is_dir():
        raise UserError(
            f"--out {out}: an existing file that is not a .tflite; give NAME.tflite or a folder"
        )
    elif out.suffix and not out.exists():
        raise UserError(
            f"--out {out}: not a .tflite name; give NAME.tflite, or a folder name without a suffix"
        )
    else:
        model, folder = out / "faces.tflite", out
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create {folder} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"--out {out}: {folder} is not writable")
    return model


def train(args, cfg: Config, models_dir: Path) -> dict:
    """Crop, embed, calibrate, fit the head, export int8; returns the metrics."""
    from convert import export

    t0 = time.monotonic()
    root = Path(args.dataset)
    found, skipped = crawl(root)  # cheap checks first, before TensorFlow loads
    named = [label for _, label in found if label]
    _require_people(root, sorted(set(named)), len(named), len(skipped))
    model_path = model_target(args.out)
    log.info("loading TensorFlow and the %s backbone", args.backbone)
    import_tensorflow_quietly()
    backbone = load_backbone(args.backbone, models_dir, args.weights)
    t_load = time.monotonic()
    cache = CropCache(Path(args.cache) if args.cache else default_cache_dir(root))
    ds = load_dataset(root, cfg.detect, backbone.input_size, cache)
    _require_people(root, ds.labels, len(ds.samples), len(ds.skipped))
    labels = ds.labels
    samples = ds.known() + ds.unknown()
    y = np.array([labels.index(s.label) if s.label else -1 for s in samples])
    t_crop = time.monotonic()
    emb = embed_samples(backbone, samples, cache)
    t_embed = time.monotonic()
    scores = held_out_scores(emb, y, len(labels), args.seed)
    rules = calibrate(scores)
    chosen = rules["chosen"]
    floor = getattr(args, "min_stranger_rejection", MIN_STRANGER_REJECTION)
    _require_rejection(root, chosen["stranger_rejection"], floor)
    head = fit_head(
        emb.reshape(-1, emb.shape[-1]), np.repeat(y, emb.shape[1]), len(labels), args.seed
    )
    t_head = time.monotonic()

    crops = np.stack([s.crop_rgb for s in samples])
    tmp = temp_beside(model_path).with_suffix(".training")  # not a change's leftover
    try:
        log.info("exporting the int8 model (converting the graph: 10-60 s)")
        tmp.write_bytes(export.convert(backbone, head, crops))
        t_export = time.monotonic()
        from edge.tflite import load_interpreter

        outputs = export.output_indices(
            load_interpreter(tmp, 1), backbone.embedding_size, len(labels)
        )
        # known people's crops, mirrored (unseen by calibration); _unknown/ crops are left out:
        # their probabilities are near-uniform by training, so their argmax is a coin toss
        known_crops = crops[: len(ds.known())]
        pick = np.linspace(0, len(known_crops) - 1, min(200, len(known_crops))).astype(int)
        quant = export.compare(tmp, backbone, head, known_crops[pick, :, ::-1].copy())
        known = scores["known"]
        metrics = {
            "backbone": backbone.name,
            "people": len(labels),
            "photos": len(ds.known()),
            "unknown_photos": len(ds.unknown()),
            "skipped": len(ds.skipped),
            "cv_folds": scores["folds"],
            "cv_top1": round(float(np.mean(known["pred"] == known["true"])), 4),
            "calibration": rules,
            "int8_vs_float": quant,
            "model_mb": round(tmp.stat().st_size / 1e6, 2),
            "seconds": {
                "load_backbone": round(t_load - t0, 1),
                "crop": round(t_crop - t_load, 1),
                "embed": round(t_embed - t_crop, 1),
                "calibrate_and_head": round(t_head - t_embed, 1),
                "export": round(t_export - t_head, 1),
                "total": round(time.monotonic() - t0, 1),
            },
        }
        meta = {
            "format": 1,
            "labels": labels,
            "input_size": backbone.input_size,
            "input": "uint8 RGB crop, 1 x S x S x 3, aligned by edge.align.Aligner",
            "normalization": backbone.normalization,
            "backbone": backbone.name,
            "embedding_size": backbone.embedding_size,
            "outputs": outputs,
            "thresholds": {
                "min_probability": chosen["min_probability"],
                "max_distance": chosen["max_distance"],
                "rule": "named when probability >= min_probability and cosine distance to the centroid <= max_distance",
            },
            "centroids": np.round(head.centroids, 6).tolist(),
            "metrics": metrics,
            "dataset": {"path": str(root.resolve()), "hash": ds.digest()},
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        store = FaceStore(labels, emb, y, [s.key for s in samples])
        replaced = model_path.exists()
        # through the library owner: under its lock, faces.json last (a running edge never
        # reads half a model), slugs kept, the trained thresholds the new baseline
        FaceLibrary(cfg, model_path).adopt_training(tmp, meta, store)
        log.info(
            "wrote model %s, labels %s and embedding store %s%s",
            model_path,
            labels_path(model_path),
            json.loads(labels_path(model_path).read_text())["store"],
            " (replacing the previous ones)" if replaced else "",
        )
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted export leaves nothing behind
    rows = per_person(ds)
    for r in rows:
        if r["person"] != UNKNOWN_DIR and "left_out" not in r and r["used"] < FEW_PHOTOS:
            log.warning(
                "%s: only %d usable photo(s); add %d or more for reliable recognition",
                root / r["person"],
                r["used"],
                FEW_PHOTOS,
            )
    sys.stderr.write(person_table(ds, rows))
    return {"model": str(model_path), **metrics, "per_person": rows}


def evaluate(args, cfg: Config) -> dict:
    """Run the exported model on DATASET: folders named like a label are that person, others strangers."""
    from edge.head import DIST_GRID, PROB_GRID
    from edge.recognize import FaceModel

    model = FaceModel.load(args.model, cfg.recognize)
    cache = CropCache(Path(args.cache) if args.cache else default_cache_dir(args.dataset))
    ds = load_dataset(Path(args.dataset), cfg.detect, model.input_size, cache, min_photos=1)
    if not ds.samples:
        raise UserError(f"{ds.root}: no usable photos")
    known = {"pred": [], "true": [], "prob": [], "dist": []}
    stranger = {"prob": [], "dist": []}
    for s in ds.samples:
        emb, probs = model.infer(cv2.cvtColor(s.crop_rgb, cv2.COLOR_RGB2BGR))
        best = int(np.argmax(probs))
        prob, dist = float(probs[best]), float(cosine_distance(emb, model.centroids[best]))
        if s.label in model.labels:
            for k, v in zip(known, (best, model.labels.index(s.label), prob, dist), strict=True):
                known[k].append(v)
        else:
            stranger["prob"].append(prob)
            stranger["dist"].append(dist)
    scores = {
        "known": {k: np.asarray(v) for k, v in known.items()},
        "stranger": {k: np.asarray(v) for k, v in stranger.items()},
    }
    p, d = model.min_probability, model.max_distance
    kr, sr = rates(scores, p, d)

    def row(pp: float, dd: float) -> dict:
        a, b = rates(scores, pp, dd)
        return {
            "min_probability": round(float(pp), 2),
            "max_distance": round(float(dd), 2),
            "known_accuracy": round(a, 4),
            "stranger_rejection": round(b, 4),
        }

    return {
        "model": str(args.model),
        "known_photos": len(known["true"]),
        "stranger_photos": len(stranger["prob"]),
        "skipped": len(ds.skipped),
        "top1": round(float(np.mean(np.array(known["pred"]) == np.array(known["true"]))), 4)
        if known["true"]
        else None,
        "thresholds": {"min_probability": p, "max_distance": d},
        "known_accuracy": round(kr, 4),
        "stranger_rejection": round(sr, 4),
        "roc_distance": [row(p, dd) for dd in DIST_GRID[:61:5]],
        "roc_probability": [row(pp, d) for pp in PROB_GRID[::2]],
    }
