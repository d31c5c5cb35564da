"""The still-photo profile: the live detector's method in several passes, merged by NMS.

A photo is not a camera frame: its face may fill it (a passport photo, an LFW crop) or be
one of many small ones (a group photo). Two-stage (the default) runs up to three passes with
one cascade, one BlazeFace and one confirmer, cheapest first, each looking only for the faces
the earlier ones could not find (smaller than the smallest they cover, with some overlap):
- padded: BlazeFace on the photo (at most PROPOSER_SIDE px) with a gray border of
  `photo.pad` x its longer side (a face that fills the photo gets the context the detectors
  need around it); it covers faces from PROPOSER_MIN of the padded side up;
- main: Haar at `photo.width`, skipped when the padded pass's scale (`photo.pad_width`)
  already reaches it;
- large: Haar at `photo.large_width`, for photos wider than `photo.width` (small faces).
Every proposal is confirmed by the DNN on a margin crop of the full-resolution photo. When
no pass finds a face, the whole photo is taken as one proposal (a crop tighter than the
padded pass can handle): a face the DNN confirms there that fills it is kept.
Other methods (haar, dnn) run the same passes whole, each as its own detector.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import PhotoConfig
from edge.detectors.base import Detector, Face, clamp_face, nms, scale_face
from edge.detectors.haar import equalized_gray
from edge.detectors.twostage import TwoStageDetector

PAD_GRAY = (127, 127, 127)
OVERLAP = 1.25  # a later pass also looks at faces this much larger than an earlier one's smallest
FILLING = 0.5  # the whole-photo proposal keeps a face at least this share of the shorter side
PROPOSER_SIDE = 256  # the padded pass's proposer sees the photo at most this many px wide,
PROPOSER_MIN = 0.2  # and finds faces from this share of the padded photo's side up
TIGHT_SCORE = 0.2  # a DNN score from here up to `confidence`: "too tight" rather than "no face"


def photo_passes(
    width: int, height: int, photo: PhotoConfig, window: int
) -> list[tuple[str, float]]:
    """(kind, scale) of each pass for a photo of this size, cheapest (smallest) first; no
    pass is finer than needed for a face of `photo.min_face` px (Haar's `window`)."""
    finest = min(1.0, window / photo.min_face)
    out: list[tuple[str, float]] = []
    if photo.pad > 0:
        padded = width + 2 * photo.pad * max(width, height)
        out.append(("padded", min(finest, photo.pad_width / padded)))
    out.append(("main", min(finest, photo.width / width)))
    if photo.large_width > photo.width and width > photo.width:
        out.append(("large", min(finest, photo.large_width / width)))
    out.sort(key=lambda p: p[1])
    kept: list[tuple[str, float]] = []
    for kind, scale in out:  # a plain pass at a scale already covered adds nothing
        if kept and scale <= kept[-1][1] + 1e-6:
            continue
        kept.append((kind, scale))
    return kept


class PhotoDetector(Detector):
    """Two-stage passes over a photo (see the module doc), proposals confirmed by `twostage`."""

    def __init__(
        self,
        twostage: TwoStageDetector,
        photo: PhotoConfig,
        nms_iou: float,
        proposer: Detector,
    ) -> None:
        self.twostage = twostage
        self.photo = photo
        self.nms_iou = nms_iou
        self.proposer = proposer  # BlazeFace: the padded pass's proposals

    def _large(self, image: np.ndarray) -> tuple[list[Face], float]:
        """The padded pass by `proposer`: its proposals (photo px, centred inside the photo)
        and the smallest face (photo px) it covers."""
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
        return out, PROPOSER_MIN * max(padded.shape[:2]) / scale

    def _proposals(self, image: np.ndarray, scale: float, max_size: int) -> list[Face]:
        """Haar proposals of one plain pass, in the photo's px."""
        h, w = image.shape[:2]
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = self.twostage.haar.proposals(equalized_gray(image), max_size)
        return [scale_face(f, 1.0 / scale) for f in found[: self.photo.max_proposals]]

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """Faces in the photo `frame`, boxes in its own px; `small` is ignored."""
        h, w = frame.shape[:2]
        min_size = self.twostage.haar.cfg.haar.min_size
        covered = float("inf")  # the smallest face (photo px) the passes so far could find
        faces: list[Face] = []
        for kind, scale in photo_passes(w, h, self.photo, min_size):
            if kind == "padded":
                proposals, smallest = self._large(frame)
                faces += self.twostage.confirm(frame, proposals)
                covered = min(covered, smallest)
                continue
            max_size = 0 if covered == float("inf") else int(covered * scale * OVERLAP)
            proposals = self._proposals(frame, scale, max_size)
            faces += self.twostage.confirm(frame, proposals)
            covered = min(covered, min_size / scale)
        if not faces:
            faces = [f for f in self._whole(frame) if f.score >= self.twostage.cfg.confidence]
        return [clamp_face(f, w, h) for f in nms(faces, self.nms_iou)]

    def _whole(self, frame: np.ndarray) -> list[Face]:
        """The DNN's faces (any score) on the whole photo as one proposal, that fill it."""
        h, w = frame.shape[:2]
        found = self.twostage.confirm(frame, [Face((0, 0, w, h), 1.0)], TIGHT_SCORE)
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
