"""Whether an empty scene changed since the detector last looked at it (then it needs no detector)."""

from __future__ import annotations

import cv2
import numpy as np

THUMB = (80, 60)  # the scene is compared at this size: sensor noise averages out
LEVELS = 12  # a thumbnail pixel differing by more than this many grey levels has changed
FRACTION = 0.002  # the scene changed when more than this share of its pixels did (~10 of 4800)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey copy of a BGR frame."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA)


class SceneWatch:
    """Remembers the scene the detector last ran on; says whether the current one differs."""

    def __init__(self) -> None:
        self._seen: np.ndarray | None = None

    def looked(self, image: np.ndarray) -> None:
        """The detector ran on this frame."""
        self._seen = thumbnail(image)

    def changed(self, image: np.ndarray, ignore: list[tuple] = (), margin: float = 0.0) -> bool:
        """True unless this frame looks like the one the detector last ran on, apart from the
        `ignore` boxes (`image` px, each grown by `margin` of its size on every side)."""
        if self._seen is None:
            return True
        moved = cv2.absdiff(thumbnail(image), self._seen) > LEVELS
        sx, sy = THUMB[0] / image.shape[1], THUMB[1] / image.shape[0]
        for x, y, w, h in ignore:
            m = margin * max(w, h)
            x0, y0 = max(0, int((x - m) * sx)), max(0, int((y - m) * sy))
            moved[y0 : int((y + h + m) * sy) + 1, x0 : int((x + w + m) * sx) + 1] = False
        return int(np.count_nonzero(moved)) > FRACTION * moved.size
