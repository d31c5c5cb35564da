"""The still-photo profile: several passes over a photo, each proposing, merged by NMS.

A photo is not a camera frame: its face may fill it (a passport photo, an LFW crop) or be
one of many small ones (a group photo). Two-stage (the default) proposes with two BlazeFace
models, loaded once, and confirms every proposal with the DNN on a margin crop of the
full-resolution photo:
- large faces: short-range BlazeFace on the photo (at most PROPOSER_SIDE px) with a gray
  border of `photo.pad` x its longer side (a face that fills the photo gets the context the
  detectors need around it);
- small faces: full-range BlazeFace on the whole photo, and on tiles of it when a face of
  `photo.min_face` px would be smaller than SMALL_FACE px of the model's input (the photo
  seen at most `photo.large_width` px wide).
A proposal overlapping a face already confirmed is not confirmed again, and a small face
the DNN confirms is kept only when the aligner's landmark model does not call it "no face"
(full-range proposals are more face-like than Haar's: two DNNs can agree on a headlight).
When no pass finds a face, the whole photo is taken as one proposal (a crop tighter than the
padded pass can handle): a face the DNN confirms there that fills it is kept.
Other methods (haar, dnn) run the same detector at `photo.width`, `photo.large_width` and
padded, each pass whole.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.align import Aligner
from edge.config import PhotoConfig
from edge.detectors.base import Detector, Face, clamp_face, downscale, nms, scale_face, unseen
from edge.detectors.blazeface import BlazeFaceDetector
from edge.detectors.twostage import Confirmer

PAD_GRAY = (127, 127, 127)
FILLING = 0.5  # the whole-photo proposal keeps a face at least this share of the shorter side
PROPOSER_SIDE = 256  # the padded pass's proposer sees the photo at most this many px wide
TIGHT_SCORE = 0.2  # a DNN score from here up to `confidence`: "too tight" rather than "no face"
SMALL_FACE = 12  # full-range BlazeFace (192 px input) finds faces from this many input px
WHOLE_PAD = 0.1  # gray border around the photo for full-range BlazeFace (faces cut by its edge)
TILE_OVERLAP = 64  # px neighbouring tiles share: a face up to this size is whole in one of them


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start of each tile along one side of `length` px: tiles of `tile` px, evenly spaced,
    neighbours sharing at least `overlap` px, the last ending at the edge."""
    if length <= tile:
        return [0]
    n = -(-(length - overlap) // (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


class PhotoDetector(Detector):
    """BlazeFace passes over a photo (see the module doc), proposals confirmed by `confirm`."""

    def __init__(
        self,
        confirm: Confirmer,
        photo: PhotoConfig,
        nms_iou: float,
        proposer: Detector,
        small_faces: BlazeFaceDetector,
        aligner: Aligner,
    ) -> None:
        self.confirm = confirm
        self.photo = photo
        self.nms_iou = nms_iou
        self.proposer = proposer  # short-range BlazeFace: the padded pass
        self.small_faces = small_faces  # full-range BlazeFace: the whole photo and its tiles
        self.aligner = aligner  # its landmark model: a third opinion on the small faces

    def _large(self, image: np.ndarray) -> list[Face]:
        """The padded pass's proposals, photo px, centred inside the photo."""
        h, w = image.shape[:2]
        scale = min(1.0, PROPOSER_SIDE / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        p = round(self.photo.pad * max(small.shape[:2]))
        padded = cv2.copyMakeBorder(small, p, p, p, p, cv2.BORDER_CONSTANT, value=PAD_GRAY)
        out = []
        for f in self.proposer.detect(padded, padded):
            f = scale_face(f, 1.0 / scale, -p / scale, -p / scale)
            x, y, fw, fh = f.box
            if 0 <= x + fw / 2 < w and 0 <= y + fh / 2 < h:
                out.append(Face(f.box, f.score))
        return out

    def _small(self, image: np.ndarray) -> list[Face]:
        """Full-range BlazeFace's proposals on the whole photo and, where a face of
        `photo.min_face` px needs it, on tiles of the scaled photo; photo px, best first."""
        h, w = image.shape[:2]
        side = self.small_faces.size
        inner = side / (1 + 2 * WHOLE_PAD)  # the photo's longer side in the model's input
        whole, scale = downscale(image, max(1, round(inner * w / max(w, h))))
        p = round(WHOLE_PAD * max(whole.shape[:2]))
        whole = cv2.copyMakeBorder(whole, p, p, p, p, cv2.BORDER_CONSTANT, value=PAD_GRAY)
        found = [
            scale_face(f, 1.0 / scale, -p / scale, -p / scale)
            for f in self.small_faces.detect(whole, whole)
        ]
        widest = max(self.photo.width, self.photo.large_width)
        scale = min(1.0, SMALL_FACE / self.photo.min_face, widest / max(w, h))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        if max(sw, sh) > side:
            scaled = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
            for y0 in tile_origins(sh, side, TILE_OVERLAP):
                for x0 in tile_origins(sw, side, TILE_OVERLAP):
                    tile = scaled[y0 : y0 + side, x0 : x0 + side]
                    found += [
                        scale_face(f, 1.0 / scale, x0 / scale, y0 / scale)
                        for f in self.small_faces.detect(tile, tile)
                    ]
        found.sort(key=lambda f: -f.score)
        return [Face(f.box, f.score) for f in nms(found, 0.5)][: self.photo.max_proposals]

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in the photo `frame`, boxes in its own px; `small` is ignored."""
        h, w = frame.shape[:2]
        faces = self.confirm(frame, self._large(frame))
        more = unseen(self._small(frame), faces)
        faces += [f for f in self.confirm(frame, more) if self._present(frame, f)]
        if not faces:
            faces = [f for f in self._whole(frame) if f.score >= self.confirm.cfg.confidence]
        return [clamp_face(f, w, h) for f in nms(faces, self.nms_iou)]

    def _present(self, image: np.ndarray, face: Face) -> bool:
        """False when the landmark model says `face` is no face (its presence logit below 0)."""
        logit = self.aligner.presence(image, face)
        return logit is None or logit >= 0.0

    def _whole(self, frame: np.ndarray) -> list[Face]:
        """The DNN's faces (any score) on the whole photo as one proposal, that fill it."""
        h, w = frame.shape[:2]
        found = self.confirm(frame, [Face((0, 0, w, h), 1.0)], TIGHT_SCORE)
        return [f for f in found if min(f.box[2], f.box[3]) >= FILLING * min(w, h)]

    def why_none(self, frame: np.ndarray) -> str:
        """Why `detect` found no face in this photo: too small, too tight, or no face."""
        h, w = frame.shape[:2]
        if min(w, h) < self.photo.min_face:
            return f"photo too small ({w}x{h} px; a face needs {self.photo.min_face} px or more)"
        best = max((f.score for f in self._whole(frame)), default=0.0)
        if best >= TIGHT_SCORE:
            return (
                f"too tight: what may be a face fills the photo (score {best:.2f}); "
                "a photo with some room around the face works"
            )
        return "no face found"


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


class PassesDetector(Detector):
    """The union of whole-detector `passes` (detector, only for photos wider than this) after
    NMS: the photo profile of the haar and dnn methods."""

    def __init__(self, passes: list[tuple[Detector, int]], nms_iou: float) -> None:
        self.passes = passes
        self.nms_iou = nms_iou

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in the photo `frame`, boxes in its own px; `small` is ignored."""
        width = frame.shape[1]
        faces = [f for det, above in self.passes if width > above for f in det.detect(frame)]
        return nms(faces, self.nms_iou)
