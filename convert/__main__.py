"""Command line: `python -m convert train|eval|cluster|enroll|forget|scan|find`; results on stdout."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
log = logging.getLogger("convert")


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


def _parse(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m convert", description="Build the face model from photos.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train faces.tflite + faces.json from DATASET/<Name>/*.jpg")
    t.add_argument("dataset", metavar="DATASET")
    t.add_argument("--out", default=str(MODELS), metavar="DIR", help="output folder (models/)")
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
    for q in (t, e):
        q.add_argument("--config", metavar="FILE", help="config YAML (detector settings)")
        q.add_argument("--cache", metavar="DIR", help="crop/embedding cache (DATASET/.cache)")
    from convert import library_cli

    library_cli.add_parsers(sub, MODELS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 2 with one line on stderr for bad input."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge.config import ConfigError, load_config
    from edge.errors import UserError

    try:
        cfg = load_config(args.config, {})
        from convert import cli_train

        if args.command == "train":
            result = cli_train.train(args, cfg, MODELS)
        elif args.command == "eval":
            result = cli_train.evaluate(args, cfg)
        else:
            from convert import library_cli

            result = library_cli.run(args, cfg, MODELS)
            if isinstance(result, str):  # `find`: one path per line
                sys.stdout.write(result)
                return 0
    except (ConfigError, UserError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
