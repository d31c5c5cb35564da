"""The close-up doorbell clip: tests/doorbell.py's visits seen by a camera zoomed 2x.

The door's middle fills the frame, so faces are half the frame high or more and some are
cut by its edge (a visitor leaning in to a doorbell camera). Same timeline format and
scoring (`tests.doorbell.score_events`).

    python tests/closeup.py --out DIR [--visits 20] [--seed N]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.doorbell import main, make_clip  # noqa: E402

ZOOM = 2.0


def make_closeup_clip(data_dir: Path, out: Path, visits: int = 20, seed: int = 0) -> dict[str, Any]:
    """Write out/clip.mp4 and out/timeline.json for the close-up camera; returns the timeline."""
    return make_clip(data_dir, out, visits, seed, zoom=ZOOM)


if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "--zoom", str(ZOOM)]))
