"""Base types every detector backend shares: Face, Detector, and box geometry helpers.

Kept apart from edge/detect.py (the factory that imports the backends), so that a backend
imports only this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SAME_FACE = 0.3  # a proposal overlapping a face already found this much (IoU) is that face


@dataclass
class Face:
    """One detected face in original-frame pixels."""

    box: tuple[int, int, int, int]  # x, y (top-left), w, h
    score: float
    landmarks: np.ndarray | None = None  # (N, 2) float, original-frame px; BlazeFace order when N=6

    def to_json(self) -> dict:
        """The CLI's JSON form: {"box": [x, y, w, h], "score": S}."""
        return {"box": [int(v) for v in self.box], "score": round(float(self.score), 4)}


class Detector:
    """detect(frame) -> faces, boxes in the frame's own pixels."""

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in `frame` (BGR); `small` is an optional already-downscaled copy of it."""
        raise NotImplementedError


def downscale(frame: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """`frame` resized to `width` px wide (never enlarged) and the factor small/original."""
    w = frame.shape[1]
    if w <= width:
        return frame, 1.0
    scale = width / w
    height = max(1, round(frame.shape[0] * scale))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), scale


def small_frame(
    frame: np.ndarray, small: np.ndarray | None, width: int
) -> tuple[np.ndarray, float]:
    """The downscaled frame to detect on (the caller's `small` if given) and its scale."""
    if small is not None:
        return small, small.shape[1] / frame.shape[1]
    return downscale(frame, width)


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def unseen(proposals: list[Face], found: list[Face]) -> list[Face]:
    """The proposals that are none of the faces already `found` (IoU below SAME_FACE)."""
    return [p for p in proposals if all(iou(p.box, f.box) < SAME_FACE for f in found)]


def nms(faces: list[Face], threshold: float) -> list[Face]:
    """Greedy non-maximum suppression: drop a face overlapping a stronger one by > threshold."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.score):
        if all(iou(face.box, k.box) <= threshold for k in kept):
            kept.append(face)
    return kept


def scale_face(face: Face, factor: float, dx: float = 0.0, dy: float = 0.0) -> Face:
    """`face` with box and landmarks multiplied by `factor`, then shifted by (dx, dy)."""
    x, y, w, h = face.box
    box = (
        round(x * factor + dx),
        round(y * factor + dy),
        max(1, round(w * factor)),
        max(1, round(h * factor)),
    )
    marks = None
    if face.landmarks is not None:
        marks = face.landmarks * factor + np.array([dx, dy], dtype=np.float32)
    return Face(box, face.score, marks)


def clip_face(face: Face, width: int, height: int) -> Face | None:
    """`face` with its box clipped to the frame; None when nothing of it is inside."""
    x, y, w, h = face.box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Face((x0, y0, x1 - x0, y1 - y0), face.score, face.landmarks)


def clamp_face(face: Face, width: int, height: int) -> Face:
    """`face` with its box cut to the frame, kept at least 1 px wide and high."""
    x, y, w, h = face.box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    return Face((x0, y0, max(1, x1 - x0), max(1, y1 - y0)), face.score, face.landmarks)
