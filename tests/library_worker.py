"""A process that changes a face library over and over (the kill -9 and concurrency tests).

usage: python -m tests.library_worker CONFIG NAME PHOTO... : enrolls each photo of NAME one at
a time, then removes them again, forever (or --rounds N); prints `ok KIND FILE` after each
change that returned, flushed, so the parent knows what was reported done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.config import load_config
from edge.errors import UserError
from edge.library import FaceLibrary


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("name")
    p.add_argument("photos", nargs="+", type=Path)
    p.add_argument("--rounds", type=int, default=0)
    args = p.parse_args()
    library = FaceLibrary(load_config(args.config))
    rounds = 0
    while not args.rounds or rounds < args.rounds:
        for photo in args.photos:
            try:
                result = library.enroll(args.name, [photo], force=True)
            except UserError:  # kept from the last round (already enrolled)
                continue
            sys.stdout.write(f"ok enroll {result['files'][0]}\n")
            sys.stdout.flush()
        if args.rounds:
            return 0
        for file in list(library.photos_of(args.name))[1:]:
            library.remove_photo(args.name, file)
            sys.stdout.write(f"ok remove {file}\n")
            sys.stdout.flush()
        rounds += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
