"""The detection photos' true boxes, and matching found faces against them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edge.detect import Face, iou

IOU_MATCH = 0.4


def load_gt(folder: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """gt_boxes.csv -> {image name: [(x, y, w, h), ...]}."""
    gt: dict[str, list] = {}
    with open(folder / "gt_boxes.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            gt.setdefault(row["image"], []).append(tuple(int(row[k]) for k in "xywh"))
    return gt


def match(faces: list[Face], truth: list[tuple]) -> tuple[int, int, int]:
    """Greedy one-to-one matching by score at IoU >= 0.4: (true pos, false pos, missed)."""
    free = list(truth)
    tp = fp = 0
    for face in sorted(faces, key=lambda f: -f.score):
        scored = [(iou(face.box, g), i) for i, g in enumerate(free)]
        best = max(scored, default=(0.0, -1))
        if best[0] >= IOU_MATCH:
            tp += 1
            free.pop(best[1])
        else:
            fp += 1
    return tp, fp, len(free)


def mosaic(photos: list[tuple[np.ndarray, list]], cols: int = 3) -> tuple[np.ndarray, list]:
    """The photos pasted on a gray grid, one per cell, and their boxes moved with them."""
    cell_h = max(im.shape[0] for im, _ in photos)
    cell_w = max(im.shape[1] for im, _ in photos)
    rows = -(-len(photos) // cols)
    canvas = np.full((rows * cell_h, cols * cell_w, 3), 90, np.uint8)
    boxes = []
    for i, (im, truth) in enumerate(photos):
        y0, x0 = (i // cols) * cell_h, (i % cols) * cell_w
        canvas[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
        boxes += [(x + x0, y + y0, w, h) for x, y, w, h in truth]
    return canvas, boxes
