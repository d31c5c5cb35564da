"""Face crops for the recognizer: square, eyes level, same margin in training and on the Pi."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detect import Face

log = logging.getLogger("edge.align")

CROP_MARGIN = (
    0.05  # added on each side of the detector box (fraction of its size); tuned for res10 + FaceNet
)
LANDMARK_ROI = 1.5  # the landmark model sees the box enlarged this much (as MediaPipe does)
LANDMARK_SIZE = 192
# face_landmark.tflite (468 points): the corners of each eye
_EYE_A = (33, 133)
_EYE_B = (362, 263)
_MAX_TILT_DEG = 45.0  # a steeper eye line is a landmark failure: crop the plain box


class Aligner:
    """crop(image, face, size): the face rotated so the eyes are level, resized to size x size."""

    def __init__(self, cfg: DetectConfig, margin: float = CROP_MARGIN) -> None:
        self._cfg = cfg
        self.margin = margin
        self._landmarker = None

    def eyes(self, image: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray] | None:
        """The two eye centres (image left one first) in image px, or None when unknown."""
        lm = face.landmarks
        if lm is not None and len(lm) in (5, 6):  # BlazeFace / YuNet order: both eyes first
            a, b = np.asarray(lm[0], np.float64), np.asarray(lm[1], np.float64)
        elif lm is not None and len(lm) >= 468:
            a, b = lm[list(_EYE_A)].mean(axis=0), lm[list(_EYE_B)].mean(axis=0)
        else:
            found = self._landmarks(image, face, 0.0)
            if found is None:
                return None
            a, b = found
            tilt = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
            if (
                8.0 < abs(tilt) <= _MAX_TILT_DEG
            ):  # the model under-reads tilted faces: look again level
                found = self._landmarks(image, face, tilt)
                if found is not None:
                    a, b = found
        return (a, b) if a[0] <= b[0] else (b, a)

    def crop(self, image_bgr: np.ndarray, face: Face, size: int) -> np.ndarray:
        """uint8 BGR size x size crop of `face`, rotation-aligned by the eyes when found."""
        x, y, w, h = face.box
        cx, cy = x + w / 2.0, y + h / 2.0
        side = max(w, h) * (1.0 + 2.0 * self.margin)
        angle = 0.0
        eyes = self.eyes(image_bgr, face)
        if eyes is not None:
            (ax, ay), (bx, by) = eyes
            tilt = math.degrees(math.atan2(by - ay, bx - ax))
            if abs(tilt) <= _MAX_TILT_DEG:
                angle = tilt
        return _warp(image_bgr, (cx, cy), side, angle, size)

    def presence(self, image: np.ndarray, face: Face) -> float | None:
        """The landmark model's face-presence logit on `face`'s box (below 0: no face), or
        None without the model."""
        found = self._run(image, face, 0.0)
        return None if found is None else found[1]

    def _landmarks(
        self, image: np.ndarray, face: Face, angle: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Eye centres from face_landmark.tflite on the box (enlarged, rotated by `angle`)."""
        found = self._run(image, face, angle)
        if found is None or found[1] < 0.0:
            return None
        points, _, m = found
        inv = cv2.invertAffineTransform(m)
        eyes = np.stack([points[list(_EYE_A)].mean(axis=0), points[list(_EYE_B)].mean(axis=0)])
        back = eyes @ inv[:, :2].T + inv[:, 2]
        return back[0], back[1]

    def _run(
        self, image: np.ndarray, face: Face, angle: float
    ) -> tuple[np.ndarray, float, np.ndarray] | None:
        """face_landmark.tflite on the box enlarged by LANDMARK_ROI and rotated by `angle`:
        (468 points in the ROI's px, presence logit, image -> ROI map), or None without it."""
        interp = self._landmark_model()
        if interp is None:
            return None
        x, y, w, h = face.box
        center = (x + w / 2.0, y + h / 2.0)
        m = _matrix(center, max(w, h) * LANDMARK_ROI, angle, LANDMARK_SIZE)
        roi = cv2.warpAffine(
            image, m, (LANDMARK_SIZE, LANDMARK_SIZE), borderMode=cv2.BORDER_REPLICATE
        )
        rgb = cv2.cvtColor(roi, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        interp.set_tensor(interp.get_input_details()[0]["index"], rgb[None])
        interp.invoke()
        outs = {int(np.prod(d["shape"])): d["index"] for d in interp.get_output_details()}
        points = interp.get_tensor(outs[1404]).reshape(468, 3)[:, :2]
        return points, float(interp.get_tensor(outs[1]).reshape(-1)[0]), m

    def _landmark_model(self):
        if self._landmarker is False:
            return None
        if self._landmarker is None:
            from edge.errors import ModelError
            from edge.tflite import load_interpreter

            try:
                self._landmarker = load_interpreter(self._cfg.landmark_model, self._cfg.threads)
            except ModelError as exc:
                log.warning("%s; faces are cropped without eye alignment", exc)
                self._landmarker = False
                return None
        return self._landmarker


def _matrix(center: tuple[float, float], side: float, angle: float, size: int) -> np.ndarray:
    """Affine map taking the `side` px square around `center`, rotated by `angle`, to size x size."""
    m = cv2.getRotationMatrix2D(center, angle, size / side)
    m[0, 2] += size / 2.0 - center[0]
    m[1, 2] += size / 2.0 - center[1]
    return m


def _warp(
    image: np.ndarray, center: tuple[float, float], side: float, angle: float, size: int
) -> np.ndarray:
    """The square of `side` px around `center`, rotated by `angle` degrees, as size x size."""
    m = _matrix(center, side, angle, size)
    return cv2.warpAffine(
        image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
