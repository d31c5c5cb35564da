"""Command line: the capture loop, plus the `detect` and `identify` subcommands.

stdout carries only the documented JSON lines; logs go to stderr. Exit status 2 with one
line on stderr for a bad argument, config, model or input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

import numpy as np

from edge.config import Config, ConfigError, load_config
from edge.errors import UserError

log = logging.getLogger("edge")


def _emit(obj: dict) -> None:
    """Write one documented JSON line to stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="config YAML (default: embedded defaults)")


def _parse_people(argv: list[str]) -> argparse.Namespace:
    """`enroll NAME PHOTO...`, `forget NAME`, `rename OLD NEW`: change the model's people."""
    cmd = argv[0]
    p = _Parser(prog=f"python -m edge {cmd}")
    if cmd == "enroll":
        p.add_argument("name", metavar="NAME", help="the person (new or already known)")
        p.add_argument("photos", nargs="+", metavar="PHOTO", help="photo files or folders")
    elif cmd == "forget":
        p.add_argument("name", metavar="NAME")
    else:
        p.add_argument("old", metavar="OLD")
        p.add_argument("new", metavar="NEW")
    _add_config(p)
    p.add_argument("--model", metavar="FILE", help="face model .tflite (default: recognize.model)")
    args = p.parse_args(argv[1:])
    args.command = cmd
    return args


def _parse(argv: list[str]) -> argparse.Namespace:
    if argv and argv[0] in ("enroll", "forget", "rename"):
        return _parse_people(argv)
    if argv and argv[0] in ("detect", "identify"):
        p = _Parser(prog=f"python -m edge {argv[0]}")
        p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
        _add_config(p)
        if argv[0] == "detect":
            p.add_argument("--detector", choices=("two-stage", "dnn", "haar"))
            p.add_argument("--confirmer", choices=("res10", "blazeface"))
            p.add_argument(
                "--profile",
                choices=("photo", "live"),
                default="photo",
                help="photo: the still-photo passes (default); live: the capture loop's settings",
            )
        else:
            p.add_argument("--model", metavar="FILE", help="face model .tflite (labels beside it)")
        args = p.parse_args(argv[1:])
        args.command = argv[0]
        return args
    p = _Parser(prog="python -m edge", description="Recognize faces from a camera or video.")
    _add_config(p)
    p.add_argument("--source", metavar="SRC", help="picamera2, device index, URL or video file")
    p.add_argument("--preview", action="store_true", help="show a window with boxes and names")
    p.add_argument("--sink", choices=("mqtt", "stdout"), help="where events go")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="pace a file like a live camera")
    pace.add_argument("--every-frame", action="store_true", help="process every frame")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames read")
    p.add_argument("--stats-json", metavar="FILE", help="write run statistics here at exit")
    args = p.parse_args(argv)
    args.command = "run"
    if args.max_frames is not None and args.max_frames < 1:
        p.error(f"--max-frames must be >= 1, got {args.max_frames}")
    return args


def _per_image(paths: list[str], faces_of: Callable[[np.ndarray], list]) -> int:
    """Print one JSON line per readable image; unreadable ones are logged and give exit 2."""
    from edge.images import iter_images, read_image

    failed = 0
    for path in iter_images(paths):
        try:
            image = read_image(path)
        except UserError as exc:
            log.error("%s", exc)
            failed += 1
            continue
        h, w = image.shape[:2]
        faces = [f.to_json() for f in faces_of(image)]
        _emit({"image": str(path), "width": w, "height": h, "faces": faces})
    return 2 if failed else 0


def _detect(args: argparse.Namespace, cfg: Config) -> int:
    from edge.detect import create_detector, create_photo_detector

    create = create_photo_detector if args.profile == "photo" else create_detector
    detector = create(cfg.detect, method=args.detector, confirmer=args.confirmer)
    return _per_image(args.paths, detector.detect)


def _identify(args: argparse.Namespace, cfg: Config) -> int:
    from edge.stills import StillRecognizer

    return _per_image(args.paths, StillRecognizer(cfg, args.model))


def _people(args: argparse.Namespace, cfg: Config) -> int:
    from edge import enroll

    if args.command == "enroll":
        from edge.images import iter_images

        missing = [p for p in args.photos if not os.path.exists(p)]
        if missing:
            raise UserError(f"{missing[0]}: no such photo or folder")
        photos = list(iter_images(args.photos))
        if not photos:
            raise UserError(f"{' '.join(args.photos)}: no photos found")
        result = enroll.enroll(cfg, args.name, photos, args.model)
    elif args.command == "forget":
        result = enroll.forget(cfg, args.name, args.model)
    else:
        result = enroll.rename(cfg, args.old, args.new, args.model)
    _emit(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load config, run the command; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        # Under systemd the journal stamps each line itself.
        format=("" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s ")
        + "%(levelname)s %(name)s: %(message)s",
    )
    try:
        overrides = {}
        if getattr(args, "source", None):
            if os.path.exists(args.source):  # a path on the command line is relative to the cwd
                args.source = os.path.abspath(args.source)
            overrides["camera.source"] = args.source
        cfg = load_config(args.config, overrides)
        logging.getLogger().setLevel(cfg.log_level)
        if args.command == "detect":
            return _detect(args, cfg)
        if args.command == "identify":
            return _identify(args, cfg)
        if args.command in ("enroll", "forget", "rename"):
            return _people(args, cfg)
        from edge.pipeline import run_pipeline

        return run_pipeline(cfg, args)
    except (ConfigError, UserError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
