"""BlazeFace (MediaPipe face detection, TFLite): SSD anchors, box decode, 6 keypoints.

Keypoints, as in MediaPipe: right eye, left eye, nose tip, mouth centre, right ear, left ear
(the subject's right/left). Short-range (128 px input) and full-range (192 px) both work;
the model's input size picks the anchor layout.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.detectors.base import Detector, Face, clip_face, scale_face, small_frame
from edge.errors import ModelError
from edge.tflite import load_interpreter

# input side -> (strides of the anchor layers, anchors per cell of each layer)
ANCHOR_LAYOUTS = {128: ((8, 16, 16, 16), 2), 192: ((4,), 1)}
WEIGHTED_NMS_IOU = 0.3  # MediaPipe's blending threshold


def ssd_anchors(size: int) -> np.ndarray:
    """(N, 2) anchor centres, normalized, in the model's output order (fixed anchor size)."""
    strides, per_layer = ANCHOR_LAYOUTS[size]
    centres = []
    i = 0
    while i < len(strides):
        stride, repeat = strides[i], 0
        while i < len(strides) and strides[i] == stride:  # same-stride layers share a grid
            repeat += per_layer
            i += 1
        cells = size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, repeat, axis=0))
    return np.concatenate(centres).astype(np.float32)


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box `a` with each row of `b`."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, marks: np.ndarray, scores: np.ndarray) -> list[tuple]:
    """MediaPipe's blending NMS: overlapping boxes are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, marks, scores = boxes[order], marks[order], scores[order]
    left = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (_box_iou(boxes[i], boxes) > WEIGHTED_NMS_IOU)
        group[i] = True
        left &= ~group
        weights = scores[group][:, None]
        box = (boxes[group] * weights).sum(0) / weights.sum()
        mark = (marks[group] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((box, mark, float(scores[i])))
    return out


class BlazeFaceDetector(Detector):
    """BlazeFace on the downscaled frame, letterboxed to the model's square input."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.interpreter = load_interpreter(cfg.blazeface_model, cfg.threads)
        inp = self.interpreter.get_input_details()[0]
        outs = self.interpreter.get_output_details()
        self.size = int(inp["shape"][1])
        if self.size not in ANCHOR_LAYOUTS or len(outs) != 2:
            raise ModelError(
                f"{cfg.blazeface_model}: not a BlazeFace model "
                f"(input {list(inp['shape'])}; expected 128 or 192 px, 2 outputs)"
            )
        self.anchors = ssd_anchors(self.size)
        by_width = sorted(outs, key=lambda d: -int(d["shape"][-1]))  # 16 regressors, 1 score
        self.input_index = inp["index"]
        self.reg_index, self.score_index = by_width[0]["index"], by_width[1]["index"]
        if int(by_width[0]["shape"][1]) != len(self.anchors):
            raise ModelError(f"{cfg.blazeface_model}: unexpected BlazeFace output shape")

    def _square(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """`image` padded (bottom/right) to a square and resized to the input; its side."""
        h, w = image.shape[:2]
        side = max(h, w)
        if h != w:
            image = cv2.copyMakeBorder(image, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(cv2.resize(image, (self.size, self.size)), cv2.COLOR_BGR2RGB)
        return rgb, side

    def _run(self, image: np.ndarray, min_score: float | None = None) -> list[Face]:
        """Faces in one BGR image, in its own px, scored from `min_score` (or the confidence)."""
        rgb, side = self._square(image)
        tensor = (rgb.astype(np.float32) / 127.5 - 1.0)[None]
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.reg_index)[0]
        logits = self.interpreter.get_tensor(self.score_index)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= (self.cfg.confidence if min_score is None else min_score)
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / self.size, scores[keep], self.anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        marks = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        h, w = image.shape[:2]
        faces = []
        for box, mark, score in weighted_nms(boxes, marks, scores):
            x0, y0, x1, y1 = (float(v) * side for v in box)
            face = Face(
                (round(x0), round(y0), round(x1 - x0), round(y1 - y0)),
                score,
                (mark * side).astype(np.float32),
            )
            face = clip_face(face, w, h)
            if face is not None:
                faces.append(face)
        return faces

    def detect_crops(
        self, crops: list[np.ndarray], min_score: float | None = None, size: int = 0
    ) -> list[list[Face]]:
        """Faces in each crop, boxes and keypoints in the crop's px; scores from `min_score`
        (`size` is the model's own input size)."""
        return [self._run(crop, min_score) for crop in crops]

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in `frame`, boxes and keypoints in its own px."""
        small, scale = small_frame(frame, small, self.cfg.downscale_width)
        return [scale_face(f, 1.0 / scale) for f in self._run(small)]
