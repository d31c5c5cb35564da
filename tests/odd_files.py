"""Hostile and odd files for the file-reading tests: a huge PNG, a FIFO, a link loop."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid black side x side RGB PNG of about 1 MB that decodes to side*side*3 bytes."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side * 3 + 1)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )
    return path


def odd_files(folder: Path) -> dict[str, Path]:
    """A FIFO `pipe.jpg` and a symlink loop `loop.jpg` in `folder`, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / "pipe.jpg"
    os.mkfifo(fifo)
    loop = folder / "loop.jpg"
    loop.symlink_to(loop.name)
    return {"fifo": fifo, "loop": loop}


def latin1_name(folder: Path, stem: bytes = b"caf\xe9", suffix: str = ".jpg") -> Path:
    """The path of a file (or folder) in `folder` whose name is Latin-1, not UTF-8."""
    return folder / os.fsdecode(stem + suffix.encode())
