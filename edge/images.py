"""Find and read image files for the `detect`/`identify` commands and for convert."""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAX_PIXELS = 50_000_000  # a 8000x6000 photo decodes to 144 MB; 20000x20000 would take 1.2 GB


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


def file_problem(path: Path | str) -> str | None:
    """Why `path` cannot be read as a regular file (a loop, no permission, a FIFO), or None.

    Never opens the file, so a named pipe cannot hang the caller."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file" if not os.path.islink(path) else "broken symbolic link"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file (a named pipe, device or socket)"
    if not os.access(path, os.R_OK):
        return "unreadable (Permission denied)"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, WebP or BMP header; None when not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            return w, int.from_bytes(data[27:30], "little") + 1
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    return None


def read_image(path: Path | str) -> np.ndarray:
    """Read an image as 3-channel BGR uint8 (EXIF orientation applied, alpha dropped).

    Raises UserError (one line naming the file) for a special, unreadable or huge file."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise UserError(f"{path}: {problem}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        size = image_size(raw)  # the whole file: a phone's metadata can pass 64 KB
        if size and size[0] * size[1] > MAX_PIXELS:
            raise UserError(
                f"{path}: {size[0]}x{size[1]} pixels is more than the "
                f"{MAX_PIXELS // 1_000_000} million decoded at most (scale it down)"
            )
        data = np.frombuffer(raw, dtype=np.uint8)
    except OSError as exc:
        raise UserError(f"{path}: unreadable ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image
