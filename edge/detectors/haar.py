"""OpenCV Haar cascades (frontal, optionally profile both ways) on an equalized gray frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detectors.base import Detector, Face, iou, scale_face, small_frame
from edge.errors import ModelError

FRONTAL = "haarcascade_frontalface_default.xml"
PROFILE = "haarcascade_profileface.xml"


def load_cascade(name: str) -> cv2.CascadeClassifier:
    """A cascade from cv2.data.haarcascades; ModelError when missing or unreadable."""
    path = Path(cv2.data.haarcascades) / name
    if not path.is_file():
        raise ModelError(f"{path}: Haar cascade not found (opencv-python-headless 4.x ships it)")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ModelError(f"{path}: not a valid Haar cascade")
    return cascade


def equalized_gray(image: np.ndarray) -> np.ndarray:
    """Gray, histogram-equalized copy of a BGR (or already gray) image."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.equalizeHist(gray)


class HaarDetector(Detector):
    """Haar cascades on the downscaled frame; score = votes / (votes + 5)."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.frontal = load_cascade(FRONTAL)
        self.profile = load_cascade(PROFILE) if cfg.haar.profile else None

    def _run(
        self, cascade: cv2.CascadeClassifier, gray: np.ndarray, max_size: int = 0
    ) -> list[Face]:
        h = self.cfg.haar
        if max_size and max_size < h.min_size:
            return []
        boxes, votes = cascade.detectMultiScale2(
            gray,
            scaleFactor=h.scale_factor,
            minNeighbors=h.min_neighbors,
            minSize=(h.min_size, h.min_size),
            maxSize=(max_size, max_size) if max_size else (0, 0),
        )
        return [
            Face(tuple(int(v) for v in box), float(n) / (float(n) + 5.0))
            for box, n in zip(boxes, votes, strict=True)
        ]

    def proposals(self, gray: np.ndarray, max_size: int = 0) -> list[Face]:
        """Faces on an equalized gray frame, in its own px, largest first, near-duplicates
        merged; none larger than `max_size` px when it is given."""
        faces = self._run(self.frontal, gray, max_size)
        if self.profile is not None:
            faces += self._run(self.profile, gray, max_size)
            width = gray.shape[1]
            for f in self._run(self.profile, cv2.flip(gray, 1), max_size):
                x, y, w, h = f.box
                faces.append(Face((width - x - w, y, w, h), f.score))
        faces.sort(key=lambda f: -f.box[2] * f.box[3])
        kept: list[Face] = []
        for face in faces:
            if all(iou(face.box, k.box) <= 0.5 for k in kept):
                kept.append(face)
        return kept

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in `frame`, boxes in its own px."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        return [scale_face(f, 1.0 / scale) for f in self.proposals(equalized_gray(small))]
