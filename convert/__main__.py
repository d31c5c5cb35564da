"""Command line: `python -m convert train|eval|enroll|forget|cluster|scan|find`; results on stdout.

The parser imports neither TensorFlow nor scikit-learn, so `--help` works on the Pi's
runtime-only install; a command that needs them says so in one line (NEEDS).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
log = logging.getLogger("convert")

# command -> the packages it imports beyond the runtime install (the `convert` extra)
NEEDS = {
    "train": ("tensorflow",),
    "backbone": ("tensorflow",),
    "enroll": ("tensorflow",),
    "forget": ("tensorflow",),
    "cluster": ("sklearn",),
}
PACKAGE = {"tensorflow": "TensorFlow", "sklearn": "scikit-learn"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a fraction between 0 and 1")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of one `python -m convert` call (exit 2 with one line when they are bad)."""
    p = _Parser(
        prog="python -m convert",
        description="Build the face model from photos, and work with unknown faces and photo libraries.",
        epilog="`python -m convert COMMAND --help` shows a command's options. Exit status: 0 done,\n"
        "2 bad argument, config, model or input (one `error:` line), 130 Ctrl-C.\n"
        "train, backbone, enroll, forget and cluster need the training tools: ./setup.sh --convert",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    t = sub.add_parser("train", help="train faces.tflite + faces.json from DATASET/<Name>/*.jpg")
    t.add_argument("dataset", metavar="DATASET")
    t.add_argument(
        "--out",
        default=str(MODELS),
        metavar="FILE|DIR",
        help="the model file to write (NAME.tflite, NAME.json beside it), "
        "or a folder for faces.tflite + faces.json (default: models/)",
    )
    t.add_argument(
        "--backbone", default="facenet", choices=("facenet", "vgg16", "resnet50", "senet50")
    )
    t.add_argument(
        "--weights", metavar="FILE", help="keras_vggface weights (.h5) for vgg16/resnet50/senet50"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--min-stranger-rejection",
        type=_fraction,
        default=0.8,
        metavar="R",
        help="refuse to write a model rejecting fewer held-out strangers (0.8; 0 accepts any)",
    )
    e = sub.add_parser("eval", help="accuracy and stranger rejection of a model on DATASET")
    e.add_argument("dataset", metavar="DATASET")
    e.add_argument("--model", default=str(MODELS / "faces.tflite"), metavar="FILE")
    b = sub.add_parser(
        "backbone",
        help="make models/backbone.tflite once: the int8 FaceNet a first model starts from",
    )
    b.add_argument("--out", metavar="FILE", help="where to write it (models/backbone.tflite)")
    b.add_argument("--config", metavar="FILE", help="config YAML (detector settings)")
    for q in (t, e):
        q.add_argument("--config", metavar="FILE", help="config YAML (detector settings)")
        q.add_argument("--cache", metavar="DIR", help="crop/embedding cache (DATASET/.cache)")
    from convert import library_cli

    library_cli.add_parsers(sub, MODELS)
    return p.parse_args(argv)


def missing_packages(command: str) -> str | None:
    """The one-line complaint when `command` needs packages this install lacks, else None."""
    missing = [PACKAGE[m] for m in NEEDS.get(command, ()) if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"`convert {command}` needs {' and '.join(missing)}, not installed here: "
        "this needs `./setup.sh --convert` (on a PC)"
    )


def _run(args: argparse.Namespace) -> dict | str:
    from edge.config import load_config

    cfg = load_config(args.config, {})
    if args.command == "train":
        from convert import cli_train

        return cli_train.train(args, cfg, MODELS)
    if args.command == "backbone":
        from convert import backbone_file

        return backbone_file.make(MODELS, cfg.detect, Path(args.out) if args.out else None)
    if args.command == "eval":
        from convert import cli_train

        return cli_train.evaluate(args, cfg)
    from convert import library_cli

    return library_cli.run(args, cfg, MODELS)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 2 with one line on stderr for bad input."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    problem = missing_packages(args.command)
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    from edge.config import ConfigError
    from edge.errors import UserError

    try:
        with logging_redirect_tqdm():  # log lines print above a progress bar, not through it
            result = _run(args)
    except (ConfigError, UserError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    if isinstance(result, str):  # `find`: one path per line
        sys.stdout.write(result)
    else:
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
