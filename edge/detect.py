"""Face detectors behind one interface: Haar proposals, DNN (res10 SSD, BlazeFace), two-stage,
and the still-photo profile.

Every detector returns boxes in the pixels of the frame it was given. The live detectors run
on a frame downscaled to `detect.downscale_width` (never upscaled); the photo profile
(`detect.photo`) runs several passes for photos. Backends live in edge/detectors/, their
shared types in edge/detectors/base.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from edge.detectors.base import (
    Detector,
    Face,
    clamp_face,
    clip_face,
    downscale,
    iou,
    nms,
    scale_face,
    small_frame,
)

if TYPE_CHECKING:
    from edge.config import DetectConfig

__all__ = [
    "Detector",
    "Face",
    "clamp_face",
    "clip_face",
    "create_detector",
    "create_dnn",
    "create_live_detector",
    "create_photo_detector",
    "downscale",
    "iou",
    "nms",
    "scale_face",
    "small_frame",
]


def create_detector(
    cfg: DetectConfig, method: str | None = None, confirmer: str | None = None
) -> Detector:
    """The detector `cfg` asks for; `method`/`confirmer` (from the CLI) override it.

    Raises ModelError (one line) when a model file is missing or corrupt.
    """
    method = method or cfg.method
    confirmer = confirmer or cfg.confirmer
    if method == "haar":
        from edge.detectors.haar import HaarDetector

        return HaarDetector(cfg)
    if method == "dnn":
        return create_dnn(cfg, confirmer)
    if method == "two-stage":
        from edge.detectors.haar import HaarDetector
        from edge.detectors.twostage import TwoStageDetector

        return TwoStageDetector(cfg, HaarDetector(cfg), create_dnn(cfg, confirmer))
    raise ValueError(f"unknown detector method {method!r}")


def create_live_detector(cfg: DetectConfig) -> Detector:
    """The live loop's detector: `cfg`'s method, plus the close-up pass (`detect.closeup`)
    for two-stage, whose Haar proposals miss faces that fill the frame or are cut by it."""
    detector = create_detector(cfg)
    if cfg.method != "two-stage" or cfg.closeup <= 0:
        return detector
    from edge.detectors.closeup import CloseUpDetector

    return CloseUpDetector(detector, create_dnn(cfg, "blazeface"), cfg.closeup)


def create_dnn(cfg: DetectConfig, name: str) -> Detector:
    """The res10 or BlazeFace detector (also a two-stage confirmer)."""
    if name == "res10":
        from edge.detectors.res10 import Res10Detector

        return Res10Detector(cfg)
    if name == "blazeface":
        from edge.detectors.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(cfg)
    raise ValueError(f"unknown DNN {name!r}")


def photo_config(cfg: DetectConfig) -> DetectConfig:
    """The live settings with the photo profile's Haar step and proposal budget."""
    photo = cfg.photo
    return replace(
        cfg,
        max_proposals=photo.max_proposals,
        haar=replace(cfg.haar, scale_factor=photo.scale_factor),
    )


def create_photo_detector(
    cfg: DetectConfig, method: str | None = None, confirmer: str | None = None
) -> Detector:
    """The still-photo profile (`detect.photo`) around the detector `cfg` asks for; its
    cascades and nets are loaded once for all passes.

    Raises ModelError (one line) when a model file is missing or corrupt.
    """
    from edge.detectors.photo import PadDetector, PassesDetector, PhotoDetector

    photo = cfg.photo
    base = photo_config(cfg)
    if (method or cfg.method) == "two-stage":
        from edge.align import Aligner
        from edge.detectors.blazeface import BlazeFaceDetector
        from edge.detectors.twostage import Confirmer

        proposer = create_dnn(base, "blazeface")
        small_faces = BlazeFaceDetector(replace(base, blazeface_model=cfg.blazeface_full_model))
        confirm = Confirmer(base, create_dnn(base, confirmer or cfg.confirmer))
        return PhotoDetector(confirm, photo, cfg.nms_iou, proposer, small_faces, Aligner(base))
    passes: list[tuple[Detector, int]] = [
        (create_detector(replace(base, downscale_width=photo.width), method, confirmer), 0)
    ]
    if photo.large_width > photo.width:
        large = create_detector(replace(base, downscale_width=photo.large_width), method, confirmer)
        passes.append((large, photo.width))
    if photo.pad > 0:
        padded = create_detector(replace(base, downscale_width=photo.pad_width), method, confirmer)
        passes.append((PadDetector(padded, photo.pad), 0))
    return PassesDetector(passes, cfg.nms_iou)
