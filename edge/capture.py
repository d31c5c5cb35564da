"""Frame sources: picamera2, OpenCV devices/URLs/files; live sources keep only the newest frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One captured frame."""

    image: np.ndarray  # full-resolution BGR uint8
    index: int  # frame number counted from the start of the source
    source_time: float  # seconds from the start of the source (index / fps for files)
    wall_time: float  # time.time() when the frame was captured
    small: np.ndarray | None = None  # low-res stream (picamera2 lores) when the source has one
