"""Find and read image files for the `detect`/`identify` commands and for convert."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def iter_images(paths: list[str]) -> Iterator[Path]:
    """Yield image files: each path itself, or the images under a folder, sorted."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / name
        else:
            yield path


def read_image(path: Path | str) -> np.ndarray:
    """Read an image as 3-channel BGR uint8 (EXIF orientation applied, alpha dropped)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image
