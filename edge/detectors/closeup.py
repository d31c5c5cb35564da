"""The live loop's close-up pass: faces that fill the frame or are cut by its edge.

Haar on the 320-px frame cannot propose a face taller than the frame, nor one whose edge is
outside it, and such faces are the common ones at a doorbell. BlazeFace short range (made
for faces near the camera, ~2 ms on the 128-px letterboxed frame) proposes the large faces;
each one the main detector did not already find is confirmed by the main detector's DNN on a
margin crop of the full-resolution frame (black past the frame's edge), so a close-up is
held to the same confirmation as every other face.
"""

from __future__ import annotations

import numpy as np

from edge.detectors.base import Detector, Face, clamp_face, scale_face, small_frame, unseen
from edge.detectors.twostage import TwoStageDetector


class CloseUpDetector(Detector):
    """`main` plus large faces (height >= `min_fraction` of the frame) from `proposer`,
    each confirmed by `main`'s DNN."""

    def __init__(self, main: TwoStageDetector, proposer: Detector, min_fraction: float) -> None:
        self.main = main
        self.proposer = proposer
        self.min_fraction = min_fraction

    def large(self, frame: np.ndarray, small: np.ndarray | None, known: list[Face]) -> list[Face]:
        """Confirmed faces at least `min_fraction` of the frame high, not among `known`."""
        small, scale = small_frame(frame, small, self.main.cfg.downscale_width)
        limit = self.min_fraction * small.shape[0]
        proposals = [
            scale_face(f, 1.0 / scale)
            for f in self.proposer.detect(small, small)
            if f.box[3] >= limit
        ]
        proposals = unseen(proposals, known)
        height, width = frame.shape[:2]
        return [clamp_face(f, width, height) for f in self.main.confirm(frame, proposals)]

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        """The main detector's faces, then the confirmed close-ups it missed."""
        faces = self.main.detect(frame, small)
        return faces + self.large(frame, small, faces)

    def detect_in(
        self,
        frame: np.ndarray,
        small: np.ndarray | None,
        tracked: list[tuple],
        regions: list[tuple] | None,
    ) -> list[Face]:
        """The main detector's faces at the tracked boxes and in the changed regions, then
        close-ups anywhere, unless nothing changed but the tracked faces (a new close-up
        changes the scene; a tracked one is verified)."""
        faces = self.main.detect_in(frame, small, tracked, regions)
        if regions == []:
            return faces
        return faces + self.large(frame, small, faces)
