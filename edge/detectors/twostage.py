"""Two-stage detection: permissive Haar proposals, each confirmed by a DNN on a margin crop.

The DNN sees a face-centred crop cut from the full-resolution frame, so it confirms small
faces it would miss in a whole-frame pass, and Haar's false positives are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detectors.base import (
    Detector,
    Face,
    clamp_face,
    nms,
    scale_face,
    small_frame,
    unseen,
)
from edge.detectors.haar import HaarDetector, equalized_gray

NEAR_MARGIN = 0.5  # detect_in: a tracked face is looked for this share of its size around it
SIZE_RATIO = 1.5  # a tracked face is not looked for at more than this factor of its size
VERIFY_SIZE = 96  # res10 input side for a tracked face's crop (128 for proposals), px


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


def _centred(face: Face, area: tuple) -> bool:
    """True when `face`'s centre lies inside the (x, y, w, h) `area`."""
    x, y, w, h = area
    cx, cy = face.box[0] + face.box[2] / 2, face.box[1] + face.box[3] / 2
    return x <= cx <= x + w and y <= cy <= y + h


class TwoStageDetector(Detector):
    """Haar proposals (largest `max_proposals` first) confirmed by `confirmer.detect_crops`."""

    def __init__(self, cfg: DetectConfig, haar: HaarDetector, confirmer: Detector) -> None:
        self.cfg = cfg
        self.haar = haar
        self.confirmer = confirmer
        self.confirm = Confirmer(cfg, confirmer)

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Confirmed faces in `frame`, boxes (and landmarks if any) in its own px."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        proposals = self.haar.proposals(equalized_gray(small))[: self.cfg.max_proposals]
        faces = self.confirm(frame, [scale_face(p, 1.0 / scale) for p in proposals])
        height, width = frame.shape[:2]
        return [clamp_face(f, width, height) for f in nms(faces, self.cfg.nms_iou)]

    def detect_in(
        self,
        frame: np.ndarray,
        small: np.ndarray | None,
        tracked: list[tuple],
        regions: list[tuple] | None,
    ) -> list[Face]:
        """detect() for the live loop, which knows where faces can be: each `tracked` box is
        checked by the confirmer alone (faces centred within NEAR_MARGIN of it), and Haar looks
        only at `regions` (where the scene changed; None = the whole frame). Boxes in frame px."""
        faces = self.verify(frame, tracked)
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        gray = equalized_gray(small)  # the whole frame's histogram, as in detect()
        if regions is None:
            found = self.haar.proposals(gray)
        else:
            h, w = gray.shape[:2]
            found = []
            for x, y, rw, rh in regions:
                x0, y0 = max(0, int(x * scale)), max(0, int(y * scale))
                x1, y1 = min(w, int((x + rw) * scale) + 1), min(h, int((y + rh) * scale) + 1)
                if x1 - x0 < 2 or y1 - y0 < 2:
                    continue
                found += [
                    scale_face(f, 1.0, x0, y0) for f in self.haar.proposals(gray[y0:y1, x0:x1])
                ]
            found.sort(key=lambda f: -f.box[2] * f.box[3])
            found = nms(found, 0.5)
        proposals = [scale_face(p, 1.0 / scale) for p in found]
        proposals = unseen(proposals, faces)
        faces += self.confirm(frame, proposals[: self.cfg.max_proposals])
        height, width = frame.shape[:2]
        return [clamp_face(f, width, height) for f in nms(faces, self.cfg.nms_iou)]

    def verify(self, frame: np.ndarray, boxes: list[tuple]) -> list[Face]:
        """The confirmer's faces (score from `detect.confidence`) on a margin crop around each
        box (frame px), centred within NEAR_MARGIN of the box's size around it and of about
        its size (SIZE_RATIO); frame px."""
        if not boxes:
            return []
        crops, places = [], []
        for x, y, w, h in boxes:
            crop, x0, y0 = square_crop(
                frame, x + w / 2, y + h / 2, max(w, h) * (1 + 2 * self.cfg.margin)
            )
            m = NEAR_MARGIN * max(w, h)
            crops.append(crop)
            places.append((x0, y0, (x - m - x0, y - m - y0, w + 2 * m, h + 2 * m)))
        faces = []
        for found, box, (x0, y0, area) in zip(
            self.confirmer.detect_crops(crops, None, VERIFY_SIZE), boxes, places, strict=True
        ):
            size = max(box[2], box[3])
            faces += [
                scale_face(f, 1.0, x0, y0)
                for f in found
                if _centred(f, area)
                and 1 / SIZE_RATIO <= max(f.box[2], f.box[3]) / size <= SIZE_RATIO
            ]
        return faces


class Confirmer:
    """A DNN's verdict on proposals, each on a margin crop of the full-resolution frame."""

    def __init__(self, cfg: DetectConfig, dnn: Detector) -> None:
        self.cfg = cfg
        self.dnn = dnn  # detect_crops: res10 or BlazeFace

    def __call__(
        self, frame: np.ndarray, proposals: list[Face], min_score: float | None = None
    ) -> list[Face]:
        """The DNN's verdict on each proposal (boxes in `frame`'s px): the faces it confirms
        (score from `min_score`, default `detect.confidence`), in `frame`'s px (not clamped,
        not merged)."""
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
            self.dnn.detect_crops(crops, min_score), places, strict=True
        ):
            # the confirmer's best face centred inside the proposal (not a neighbour's face)
            inside = [f for f in found if _centred(f, (px, py, pw, ph))]
            if inside:
                best = max(inside, key=lambda f: f.score)
                if best.score >= (self.cfg.confidence if min_score is None else min_score):
                    faces.append(scale_face(best, 1.0, x0, y0))
        return faces
