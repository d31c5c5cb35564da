"""What changed in the scene since the detector last looked at it: whether, and where.

The scene is compared at 80x60 (sensor noise averages out) with a reference the detector
updates where it looked; a part of the frame that differs from it is where a new face can be.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB = (80, 60)  # the scene is compared at this size: sensor noise averages out
LEVELS = 12  # a thumbnail pixel differing by more than this many grey levels has changed
FRACTION = 0.002  # the scene changed when more than this share of its pixels did (~10 of 4800)
CONTEXT = 0.25  # a changed region is grown by this share of its size on every side ...
MIN_CONTEXT = 6  # ... and at least this many thumbnail px (a Haar window at 320 px)
WHOLE = 0.6  # changed regions covering more than this share of the frame: the whole frame


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey copy of a BGR frame."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(gray, THUMB, interpolation=cv2.INTER_AREA)


def _merge(boxes: list[list[int]]) -> list[list[int]]:
    """Overlapping (x0, y0, x1, y1) boxes replaced by their union until none overlap."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _cells(image: np.ndarray, boxes: list[tuple]) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) thumbnail cells covering each (x, y, w, h) box of `image`."""
    sx, sy = THUMB[0] / image.shape[1], THUMB[1] / image.shape[0]
    return [
        (
            max(0, int(x * sx)),
            max(0, int(y * sy)),
            min(THUMB[0], int(np.ceil((x + w) * sx))),
            min(THUMB[1], int(np.ceil((y + h) * sy))),
        )
        for x, y, w, h in boxes
    ]


class SceneWatch:
    """Remembers the scene where the detector last looked; says whether and where the current
    frame differs from it."""

    def __init__(self) -> None:
        self._seen: np.ndarray | None = None

    def looked(self, image: np.ndarray, regions: list[tuple] | None = None) -> None:
        """The detector looked at this frame: everywhere, or only at `regions` (`image` px,
        as `regions()` gave them)."""
        thumb = thumbnail(image)
        if regions is None or self._seen is None:
            self._seen = thumb
            return
        for x0, y0, x1, y1 in _cells(image, regions):
            self._seen[y0:y1, x0:x1] = thumb[y0:y1, x0:x1]

    def _moved(self, image: np.ndarray, ignore: list[tuple], margin: float) -> np.ndarray | None:
        """Thumbnail pixels that changed, outside the grown `ignore` boxes; None if never looked."""
        if self._seen is None:
            return None
        moved = cv2.absdiff(thumbnail(image), self._seen) > LEVELS
        sx, sy = THUMB[0] / image.shape[1], THUMB[1] / image.shape[0]
        for x, y, w, h in ignore:
            m = margin * max(w, h)
            x0, y0 = max(0, int((x - m) * sx)), max(0, int((y - m) * sy))
            moved[y0 : int((y + h + m) * sy) + 1, x0 : int((x + w + m) * sx) + 1] = False
        return moved

    def changed(self, image: np.ndarray, ignore: list[tuple] = (), margin: float = 0.0) -> bool:
        """True unless this frame looks like the one the detector last ran on, apart from the
        `ignore` boxes (`image` px, each grown by `margin` of its size on every side)."""
        moved = self._moved(image, ignore, margin)
        return moved is None or int(np.count_nonzero(moved)) > FRACTION * moved.size

    def regions(
        self, image: np.ndarray, ignore: list[tuple] = (), margin: float = 0.0
    ) -> list[tuple] | None:
        """Where this frame changed since the detector looked there, apart from the `ignore`
        boxes (as in `changed`): (x, y, w, h) boxes in `image` px with room around them for a
        whole face; [] when nothing changed, None when the whole frame is to be looked at."""
        moved = self._moved(image, ignore, margin)
        if moved is None:
            return None
        if int(np.count_nonzero(moved)) <= FRACTION * moved.size:
            return []
        count, _, stats, _ = cv2.connectedComponentsWithStats(moved.astype(np.uint8), 8)
        boxes = []
        for x, y, w, h, _area in stats[1:count]:
            grow = max(MIN_CONTEXT, round(CONTEXT * max(w, h)))
            boxes.append([x - grow, y - grow, x + w + grow, y + h + grow])
        boxes = [
            [max(0, x0), max(0, y0), min(THUMB[0], x1), min(THUMB[1], y1)]
            for x0, y0, x1, y1 in _merge(boxes)
        ]
        if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) > WHOLE * moved.size:
            return None
        fx, fy = image.shape[1] / THUMB[0], image.shape[0] / THUMB[1]
        return [
            (round(x0 * fx), round(y0 * fy), round((x1 - x0) * fx), round((y1 - y0) * fy))
            for x0, y0, x1, y1 in boxes
        ]
