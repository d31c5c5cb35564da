"""The still-photo profile: the live detector run in several passes, merged by NMS.

A photo is not a camera frame: its face may fill it (a passport photo, an LFW crop) or be
one of many small ones (a group photo). So, with the live detector's method and confirmer:
- a main pass at `photo.width`;
- a pass at `photo.large_width` when the photo is wider than `photo.width` (small faces);
- a pass on the photo padded by `photo.pad` at `photo.pad_width`: a face that fills the
  photo gets the context that Haar's window and the DNN need around it.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.detectors.base import Detector, Face, clamp_face, nms, scale_face

PAD_GRAY = (127, 127, 127)


class PadDetector(Detector):
    """`inner` on the image with a gray border of `pad` x its longer side; boxes shifted back."""

    def __init__(self, inner: Detector, pad: float) -> None:
        self.inner = inner
        self.pad = pad

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces whose centre lies inside `frame`, in its own px."""
        h, w = frame.shape[:2]
        p = round(self.pad * max(h, w))
        padded = cv2.copyMakeBorder(frame, p, p, p, p, cv2.BORDER_CONSTANT, value=PAD_GRAY)
        faces = []
        for face in self.inner.detect(padded):
            face = scale_face(face, 1.0, -p, -p)
            x, y, fw, fh = face.box
            if 0 <= x + fw / 2 < w and 0 <= y + fh / 2 < h:
                faces.append(clamp_face(face, w, h))
        return faces


class PhotoDetector(Detector):
    """The union of `passes` (detector, only for photos wider than this) after NMS."""

    def __init__(self, passes: list[tuple[Detector, int]], nms_iou: float) -> None:
        self.passes = passes
        self.nms_iou = nms_iou

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in the photo `frame`, boxes in its own px; `small` is ignored."""
        width = frame.shape[1]
        faces = [f for det, above in self.passes if width > above for f in det.detect(frame)]
        return nms(faces, self.nms_iou)
