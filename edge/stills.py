"""Faces in still images in one call: detect, align, identify (face_recognition-style API)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import Config, DetectConfig
from edge.recognize import UNKNOWN

AMBIGUOUS_RATIO = 0.8  # a second face this large (area vs the largest) makes a photo ambiguous


def main_face(faces: list) -> tuple[object | None, str]:
    """The face a photo of one person shows: (largest face, warning or ""), or (None, reason)."""
    if not faces:
        return None, "no face found"
    faces = sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)
    if len(faces) == 1:
        return faces[0], ""
    a0 = faces[0].box[2] * faces[0].box[3]
    a1 = faces[1].box[2] * faces[1].box[3]
    if a1 >= AMBIGUOUS_RATIO * a0:
        return None, f"ambiguous: {len(faces)} faces of similar size"
    return faces[0], f"{len(faces)} faces; using the largest"


class PhotoCropper:
    """Photo -> aligned crop of its main face: the photo profile and the aligner, built once.

    The one path from a photo to a face crop (training, enrolment, the library)."""

    def __init__(self, cfg: DetectConfig) -> None:
        from edge.align import Aligner
        from edge.detect import create_photo_detector

        self.detector = create_photo_detector(cfg)
        self.aligner = getattr(self.detector, "aligner", None) or Aligner(cfg)  # one landmark model

    def __call__(self, image: np.ndarray, size: int) -> tuple[np.ndarray | None, str]:
        """(aligned size x size BGR crop, warning or ""), or (None, why there is none)."""
        face, note = main_face(self.detector.detect(image))
        if face is None:
            why = getattr(self.detector, "why_none", None)
            return None, why(image) if note == "no face found" and why else note
        return self.aligner.crop(image, face, size), note


_croppers: dict[str, PhotoCropper] = {}


def main_crop(image: np.ndarray, cfg: DetectConfig, size: int) -> tuple[np.ndarray | None, str]:
    """The aligned crop of the photo's main face, or (None, why not); see PhotoCropper. The
    detector and aligner are built once per process and detection config."""
    key = repr(cfg)
    if key not in _croppers:
        _croppers[key] = PhotoCropper(cfg)
    return _croppers[key](image, size)


@dataclass
class StillFace:
    """One face found in a still image."""

    face: object  # edge.detect.Face
    name: str
    confidence: float
    embedding: np.ndarray
    crop: np.ndarray  # aligned BGR crop at the model's input size
    closest: tuple[str, float] | None = None  # nearest person and cosine distance, for unknowns

    def to_json(self) -> dict:
        """The `identify` command's per-face JSON; an unknown face adds `closest` and `distance`."""
        out = {
            **self.face.to_json(),
            "name": self.name,
            "confidence": round(float(self.confidence), 4),
        }
        if self.name == UNKNOWN and self.closest is not None:
            out["closest"], out["distance"] = self.closest[0], round(self.closest[1], 4)
        return out


class StillRecognizer:
    """Photo-profile detector + aligner + face model, built once, applied to many images."""

    def __init__(self, cfg: Config, model_path: str | None = None) -> None:
        from edge.recognize import FaceModel

        self.model = FaceModel.load(model_path or cfg.recognize.model, cfg.recognize)
        cropper = PhotoCropper(cfg.detect)
        self.detector, self.aligner = cropper.detector, cropper.aligner

    def __call__(self, image: np.ndarray) -> list[StillFace]:
        """Every face in `image` with its name ('unknown' when rejected) and embedding."""
        out = []
        for face in self.detector.detect(image):
            crop = self.aligner.crop(image, face, self.model.input_size)
            ident = self.model.identify(crop)
            closest = self.model.closest(ident.embedding) if ident.name == UNKNOWN else None
            out.append(
                StillFace(face, ident.name, ident.confidence, ident.embedding, crop, closest)
            )
        return out
