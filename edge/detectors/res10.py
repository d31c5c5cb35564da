"""res10 SSD face detector (Caffe, OpenCV dnn): whole frame or a batch of crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detectors.base import Detector, Face, clip_face, scale_face, small_frame
from edge.errors import ModelError
from edge.quiet import quiet_native_stderr

MEAN = (104.0, 177.0, 123.0)


def _has_weights(net: cv2.dnn.Net) -> bool:
    """True when the first convolution got its weights (junk weight files parse as empty)."""
    try:
        for name in net.getLayerNames():
            if net.getLayer(name).type == "Convolution":
                return net.getParam(net.getLayerId(name), 0).size > 0
    except cv2.error:
        return False
    return False


def load_res10(prototxt: str, model: str) -> cv2.dnn.Net:
    """The res10 network; ModelError (one line) when a file is missing or corrupt."""
    for path in (prototxt, model):
        if not Path(path).is_file():
            raise ModelError(f"{path}: model file not found")
    with quiet_native_stderr():  # protobuf parse errors; our one line replaces them
        try:
            cv2.dnn.readNetFromCaffe(prototxt)
        except cv2.error:
            raise ModelError(f"{prototxt}: not a valid Caffe network description") from None
        try:
            net = cv2.dnn.readNetFromCaffe(prototxt, model)
        except cv2.error:
            net = None
        ok = net is not None and not net.empty() and _has_weights(net)
    if not ok:
        raise ModelError(f"{model}: not valid res10 Caffe weights (for {prototxt})")
    return net


class Res10Detector(Detector):
    """res10 SSD on the downscaled frame at its own size (fully convolutional)."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.net = load_res10(cfg.res10_prototxt, cfg.res10_model)
        cv2.setNumThreads(cfg.threads)

    def _faces(
        self, out: np.ndarray, sizes: list[tuple[int, int]], min_score: float | None = None
    ) -> list[list[Face]]:
        """SSD rows (image, class, score, x0, y0, x1, y1 normalized) -> faces per image."""
        faces: list[list[Face]] = [[] for _ in sizes]
        floor = self.cfg.confidence if min_score is None else min_score
        for row in out.reshape(-1, 7):
            score = float(row[2])
            index = int(row[0])
            if score < floor or not 0 <= index < len(sizes):
                continue
            w, h = sizes[index]
            x0, y0, x1, y1 = (float(v) for v in row[3:7])
            box = (round(x0 * w), round(y0 * h), round((x1 - x0) * w), round((y1 - y0) * h))
            face = clip_face(Face(box, score), w, h)
            if face is not None:
                faces[index].append(face)
        return faces

    def detect_crops(
        self, crops: list[np.ndarray], min_score: float | None = None, size: int = 0
    ) -> list[list[Face]]:
        """Faces in each crop (one batched forward pass at `size` px, default
        `detect.confirm_size`), boxes in the crop's px; scores from `min_score` (default
        `detect.confidence`)."""
        if not crops:
            return []
        side = size or self.cfg.confirm_size
        blob = cv2.dnn.blobFromImages(crops, 1.0, (side, side), MEAN)
        self.net.setInput(blob)
        return self._faces(self.net.forward(), [(c.shape[1], c.shape[0]) for c in crops], min_score)

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in `frame`, boxes in its own px."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        h, w = small.shape[:2]
        self.net.setInput(cv2.dnn.blobFromImage(small, 1.0, (w, h), MEAN))
        return [scale_face(f, 1.0 / scale) for f in self._faces(self.net.forward(), [(w, h)])[0]]
