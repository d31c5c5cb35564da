"""Face detectors behind one interface: Haar proposals, DNN (res10 SSD, BlazeFace), two-stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def detect(self, frame: np.ndarray) -> list[Face]:
        raise NotImplementedError
