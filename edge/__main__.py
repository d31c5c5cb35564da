"""Command line: the capture loop, plus the subcommands in COMMANDS (`detect`, `identify`).

stdout carries only the documented JSON lines; logs go to stderr. Exit status 2 with one
`error: ...` line on stderr for a bad argument, config, model or input.

A subcommand is one `Command` in COMMANDS: its one-line help, a function adding its
arguments to a parser, and a function running it with the loaded config.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.config import Config, ConfigError, load_config
from edge.errors import DISK_ERRORS, UserError

log = logging.getLogger("edge")

PROG = "python -m edge"


@dataclass(frozen=True)
class Command:
    """One subcommand of `python -m edge`."""

    help: str  # one line, shown in `python -m edge --help`
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Config], int]


def _emit(obj: dict) -> None:
    """Write one documented JSON line to stdout."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _did_you_mean(word: str) -> str:
    """' (did you mean identify?)' for a word close to a subcommand's name, else ''."""
    close = difflib.get_close_matches(word, COMMANDS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        if message.startswith("unrecognized arguments:"):
            for word in message.split(":", 1)[1].split():
                if hint := _did_you_mean(word):
                    message += f"{hint}; a command goes first: {PROG} COMMAND ..."
                    break
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="config YAML (default: embedded defaults)")


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="FILE",
        help="face model .tflite, faces.json beside it (default: recognize.model, models/faces.tflite)",
    )


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")


def _detect_arguments(p: argparse.ArgumentParser) -> None:
    _add_paths(p)
    p.add_argument("--detector", choices=("two-stage", "dnn", "haar"))
    p.add_argument("--confirmer", choices=("res10", "blazeface"))
    p.add_argument(
        "--profile",
        choices=("photo", "live"),
        default="photo",
        help="photo: the still-photo passes (default); live: the capture loop's settings",
    )


def _identify_arguments(p: argparse.ArgumentParser) -> None:
    _add_paths(p)
    _add_model(p)


def _enroll_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the person (new or already known)")
    p.add_argument("photos", nargs="*", metavar="PHOTO", help="photo files or folders")
    p.add_argument(
        "--visitor", type=int, metavar="ID", help="a saved unknown visitor's crops (edge visitors)"
    )
    _add_force(p)
    _add_model(p)


def _add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force",
        action="store_true",
        help="add faces that look like someone else's (refused by default)",
    )


def _visitor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("visitor", type=int, metavar="ID", help="the visitor's id (edge visitors)")
    _add_model(p)


def _forget_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", action="store_true", help="do not ask (the photos go to the trash)")
    _add_model(p)


def _rename_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument(
        "--merge", action="store_true", help="NEW already exists: make OLD and NEW one person"
    )
    _add_model(p)


def _history_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("export",), help="export: write the events to FILE")
    p.add_argument("file", metavar="FILE", help="the ZIP to write (events.jsonl, crops/, frames/)")
    p.add_argument("--person", metavar="NAME", help="only this person's events (or unknown)")
    p.add_argument("--day", metavar="YYYY-MM-DD", help="only this day's events (local time)")


def _per_image(paths: list[str], faces_of: Callable[[np.ndarray], list]) -> int:
    """One JSON line per readable image; an unreadable one is one `error:` line and exit 2."""
    from edge.images import iter_images, read_image

    failed = seen = 0
    for path in iter_images(paths):
        seen += 1
        try:
            image = read_image(path)
        except UserError as exc:
            sys.stderr.write(f"error: {exc}\n")
            failed += 1
            continue
        h, w = image.shape[:2]
        faces = [f.to_json() for f in faces_of(image)]
        _emit({"image": str(path), "width": w, "height": h, "faces": faces})
    if not seen:
        raise UserError(f"{' '.join(paths)}: no images found (jpg, jpeg, png, webp, bmp)")
    return 2 if failed else 0


def _detect(args: argparse.Namespace, cfg: Config) -> int:
    from edge.detect import create_detector, create_photo_detector

    create = create_photo_detector if args.profile == "photo" else create_detector
    detector = create(cfg.detect, method=args.detector, confirmer=args.confirmer)
    return _per_image(args.paths, detector.detect)


def _identify(args: argparse.Namespace, cfg: Config) -> int:
    from edge.stills import StillRecognizer

    return _per_image(args.paths, StillRecognizer(cfg))


def _library(args: argparse.Namespace, cfg: Config):
    from edge.library import FaceLibrary

    return FaceLibrary(cfg, args.model)


def _enroll(args: argparse.Namespace, cfg: Config) -> int:
    from edge.images import iter_images

    if args.visitor is not None:
        if args.photos:
            raise UserError("give photos or --visitor ID, not both")
        _emit(_library(args, cfg).name_visitor(args.visitor, args.name, force=args.force))
        return 0
    if not args.photos:
        raise UserError("give the photos to enroll, or --visitor ID")
    missing = [p for p in args.photos if not os.path.exists(p)]
    if missing:
        raise UserError(f"{missing[0]}: no such photo or folder")
    photos = list(iter_images(args.photos))
    if not photos:
        raise UserError(f"{' '.join(args.photos)}: no photos found")
    _emit(_library(args, cfg).enroll(args.name, photos, force=args.force))
    return 0


def _ignore(args: argparse.Namespace, cfg: Config) -> int:
    _emit(_library(args, cfg).name_visitor(args.visitor, None))
    return 0


def _visitors(args: argparse.Namespace, cfg: Config) -> int:
    from edge.unknowns import visitors

    found = visitors(Path(cfg.unknown_faces.dir))
    for visit, captures in sorted(found.items()):
        times = [c["time"] for c in captures]
        _emit({"visitor": visit, "crops": len(captures), "first": min(times), "last": max(times),
               "images": [str(Path(c["path"]).with_name(c["image"])) for c in captures]})  # fmt: skip
    if not found:
        log.info("no unknown visitors saved in %s", cfg.unknown_faces.dir)
    return 0


def _forget(args: argparse.Namespace, cfg: Config) -> int:
    library = _library(args, cfg)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"forget {args.name}: add --yes to confirm (no terminal to ask on)")
        sys.stderr.write(
            f"Forget {args.name}? Their photos go to {library.trash} for "
            f"{cfg.library.trash_days:g} days. [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            log.info("%s kept", args.name)
            return 0
    _emit(library.forget(args.name))
    return 0


def _rename(args: argparse.Namespace, cfg: Config) -> int:
    _emit(_library(args, cfg).rename(args.old, args.new, merge=args.merge))
    return 0


def _history(args: argparse.Namespace, cfg: Config) -> int:
    from edge.history import HistoryReader

    n = HistoryReader(cfg.history.path).export(args.file, args.person, args.day)
    _emit({"exported": n, "file": args.file, "history": cfg.history.path})
    return 0


COMMANDS: dict[str, Command] = {
    "detect": Command(
        "faces in photos: one JSON line per image with each face's box and score",
        _detect_arguments,
        _detect,
    ),
    "identify": Command(
        "names in photos: one JSON line per image; unknown faces get the closest person",
        _identify_arguments,
        _identify,
    ),
    "enroll": Command(
        "add photos of a person to the model on this device (no TensorFlow)",
        _enroll_arguments,
        _enroll,
    ),
    "visitors": Command(
        "unknown visitors saved on this device: one JSON line each (id, crops, times)",
        lambda p: None,
        _visitors,
    ),
    "ignore": Command(
        "teach the model never to name a saved unknown visitor", _visitor_arguments, _ignore
    ),
    "forget": Command(
        "remove a person from the model and their kept photos", _forget_arguments, _forget
    ),
    "rename": Command("give a person of the model another name", _rename_arguments, _rename),
    "history": Command(
        "the event history on this device: `export FILE` writes a ZIP of events and face crops",
        _history_arguments,
        _history,
    ),
}


def _loop_parser() -> _Parser:
    """The capture loop's parser; its --help lists the subcommands too."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {c.help}" for name, c in COMMANDS.items()]
    p = _Parser(
        prog=PROG,
        usage=f"{PROG} [COMMAND] [options]",
        description="Recognize faces from a camera or video file; events as JSON lines or MQTT.\n"
        "Without a COMMAND: the capture loop (the options below).",
        epilog="commands:\n"
        + "\n".join(lines)
        + f"\n\n`{PROG} COMMAND --help` shows a command's options. Exit status: 0 done,"
        "\n2 bad argument, config, model or input (one `error:` line), 130 Ctrl-C.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config(p)
    p.add_argument("--source", metavar="SRC", help="picamera2, device index, URL or video file")
    _add_model(p)
    p.add_argument("--preview", action="store_true", help="show a window with boxes and names")
    p.add_argument("--sink", choices=("mqtt", "stdout"), help="where events go")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="pace a file like a live camera")
    pace.add_argument("--every-frame", action="store_true", help="process every frame")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames read")
    p.add_argument("--stats-json", metavar="FILE", help="write run statistics here at exit")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of one `python -m edge` call (exit 2 with one line when they are bad)."""
    if argv and argv[0] in COMMANDS:
        command = COMMANDS[argv[0]]
        p = _Parser(prog=f"{PROG} {argv[0]}", description=command.help)
        command.add_arguments(p)
        _add_config(p)
        args = p.parse_args(argv[1:])
        args.command = argv[0]
        return args
    p = _loop_parser()
    if argv and not argv[0].startswith("-"):
        p.error(
            f"unknown command {argv[0]!r}{_did_you_mean(argv[0])}; commands: {', '.join(COMMANDS)}"
        )
    args = p.parse_args(argv)
    args.command = "run"
    if args.max_frames is not None and args.max_frames < 1:
        p.error(f"--max-frames must be >= 1, got {args.max_frames}")
    return args


def _is_video(path: str) -> bool:
    """True when OpenCV can open `path` as a video (logging already turned down by main)."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        return cap.isOpened()
    finally:
        cap.release()


def _overrides(args: argparse.Namespace) -> dict:
    """Config overrides from --source and --model; a path that is not there blames the flag."""
    from edge.capture import source_kind

    overrides = {}
    source = getattr(args, "source", None)
    if source:
        if source_kind(source) == "file":
            if not os.path.exists(source):
                raise UserError(f"--source {source}: no such file")
            if not _is_video(source):  # before the model loads and logs: the flag is wrong
                raise UserError(f"--source {source}: not a readable video (corrupt or unsupported)")
            source = os.path.abspath(source)  # relative to the cwd, as the user typed it
        overrides["camera.source"] = source
    model = getattr(args, "model", None)
    if model:
        first = getattr(args, "command", None) == "enroll" and not os.path.exists(model)
        if not os.path.isfile(model) and not first:  # enroll makes the first model there
            what = "a folder, not a .tflite file" if os.path.isdir(model) else "no such file"
            raise UserError(f"--model {model}: {what}")
        overrides["recognize.model"] = os.path.abspath(model)
    return overrides


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load config, run the command; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        # Under systemd the journal stamps each line itself.
        format=("" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s ")
        + "%(levelname)s %(name)s: %(message)s",
    )
    # OpenCV's own WARN lines and ffmpeg's (absent camera, corrupt file) would come before
    # our one-line error; set before cv2 opens anything. The environment can override.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        args.overrides = _overrides(args)
        cfg = load_config(args.config, args.overrides)
        logging.getLogger().setLevel(cfg.log_level)
        if args.command in COMMANDS:
            return COMMANDS[args.command].run(args, cfg)
        from edge.library import FaceLibrary
        from edge.outputs import build_outputs
        from edge.pipeline import run_pipeline

        # `systemctl reload` while models load must not kill the service (SIGHUP's default);
        # the loop installs its reload handler once it runs, and what loads now is current.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        FaceLibrary(cfg).recover()  # a change a crash cut short
        if cfg.cameras:  # a `cameras:` list: every camera in this one process
            from edge.cameras.runner import run_cameras

            return run_cameras(cfg, args, build_outputs(cfg, args))
        return run_pipeline(cfg, args, build_outputs(cfg, args))
    except (ConfigError, UserError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"error: {DISK_ERRORS[exc.errno]}{where}: nothing more was saved\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
