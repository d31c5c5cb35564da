"""Two-stage detection: permissive Haar proposals, each confirmed by a DNN on a margin crop.

The DNN sees a face-centred crop cut from the full-resolution frame, so it confirms small
faces it would miss in a whole-frame pass, and Haar's false positives are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detectors.base import Detector, Face, clamp_face, nms, scale_face, small_frame
from edge.detectors.haar import HaarDetector, equalized_gray

NEAR_MARGIN = 0.5  # detect_near: Haar looks this share of a tracked face's size around it


def square_crop(
    frame: np.ndarray, cx: float, cy: float, side: float
) -> tuple[np.ndarray, int, int]:
    """A side x side crop centred on (cx, cy), black-padded past the edges, and its top-left."""
    s = max(2, round(side))
    x0, y0 = round(cx - s / 2), round(cy - s / 2)
    h, w = frame.shape[:2]
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + s), min(h, y0 + s)
    crop = frame[sy0:sy1, sx0:sx1]
    if crop.shape[0] != s or crop.shape[1] != s:
        crop = cv2.copyMakeBorder(
            crop, sy0 - y0, y0 + s - sy1, sx0 - x0, x0 + s - sx1, cv2.BORDER_CONSTANT
        )
    return crop, x0, y0


class TwoStageDetector(Detector):
    """Haar proposals (largest `max_proposals` first) confirmed by `confirmer.detect_crops`."""

    def __init__(self, cfg: DetectConfig, haar: HaarDetector, confirmer: Detector) -> None:
        self.cfg = cfg
        self.haar = haar
        self.confirmer = confirmer

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Confirmed faces in `frame`, boxes (and landmarks if any) in its own px."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        proposals = self.haar.proposals(equalized_gray(small))[: self.cfg.max_proposals]
        faces = self.confirm(frame, [scale_face(p, 1.0 / scale) for p in proposals])
        height, width = frame.shape[:2]
        return [clamp_face(f, width, height) for f in nms(faces, self.cfg.nms_iou)]

    def detect_near(
        self, frame: np.ndarray, small: np.ndarray | None, boxes: list[tuple]
    ) -> list[Face]:
        """detect() with Haar only around `boxes` (frame px; each grown by NEAR_MARGIN of its
        size on every side): where the faces already tracked can be by now."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        gray = equalized_gray(small)  # the whole frame's histogram, as in detect()
        h, w = gray.shape[:2]
        found: list[Face] = []
        for x, y, bw, bh in boxes:
            m = NEAR_MARGIN * max(bw, bh)
            x0, y0 = max(0, int((x - m) * scale)), max(0, int((y - m) * scale))
            x1, y1 = min(w, int((x + bw + m) * scale) + 1), min(h, int((y + bh + m) * scale) + 1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            found += [scale_face(f, 1.0, x0, y0) for f in self.haar.proposals(gray[y0:y1, x0:x1])]
        found.sort(key=lambda f: -f.box[2] * f.box[3])
        proposals = nms(found, 0.5)[: self.cfg.max_proposals]
        faces = self.confirm(frame, [scale_face(p, 1.0 / scale) for p in proposals])
        height, width = frame.shape[:2]
        return [clamp_face(f, width, height) for f in nms(faces, self.cfg.nms_iou)]

    def confirm(
        self, frame: np.ndarray, proposals: list[Face], min_score: float | None = None
    ) -> list[Face]:
        """The confirmer's verdict on each proposal (boxes in `frame`'s px): the faces it
        confirms (score from `min_score`, default `detect.confidence`), in `frame`'s px (not
        clamped, not merged)."""
        if not proposals:
            return []
        crops, places = [], []
        for p in proposals:
            x, y, w, h = p.box
            crop, x0, y0 = square_crop(
                frame, x + w / 2, y + h / 2, max(w, h) * (1 + 2 * self.cfg.margin)
            )
            crops.append(crop)
            places.append((x0, y0, (x - x0, y - y0, w, h)))
        faces = []
        for found, (x0, y0, (px, py, pw, ph)) in zip(
            self.confirmer.detect_crops(crops, min_score), places, strict=True
        ):
            # the confirmer's best face centred inside the proposal (not a neighbour's face)
            inside = [
                f
                for f in found
                if px <= f.box[0] + f.box[2] / 2 <= px + pw
                and py <= f.box[1] + f.box[3] / 2 <= py + ph
            ]
            if inside:
                best = max(inside, key=lambda f: f.score)
                if best.score >= (self.cfg.confidence if min_score is None else min_score):
                    faces.append(scale_face(best, 1.0, x0, y0))
        return faces
