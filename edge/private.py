"""Face data is personal: files 0600 and folders 0700, whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: str | Path) -> Path:
    """Create `path` (and parents) if needed; make it 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def private_file(path: str | Path) -> Path:
    """Create `path` empty if it does not exist; make it 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def write_private(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` as a 0600 file (created or truncated)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)


def replace_private(path: str | Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically as a `mode` file (0600 unless said): a temp file
    beside it, synced, renamed over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_private(tmp, data)
        os.chmod(tmp, mode)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
