"""Crash-safe file steps of a library change: unique temp names, fsync, rename."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

TMP_SUFFIX = ".edge-tmp"  # every temp file of a change ends so; leftovers are removed at start


def temp_beside(path: Path) -> Path:
    """A temp name in `path`'s folder that no other writer (thread or process) uses."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def sync_dir(folder: Path) -> None:
    """Make a rename or an unlink in `folder` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data` (file mode `mode`): a crash leaves the old or the new file."""
    tmp = temp_beside(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def copy_atomic(src: Path, dst: Path, mode: int = 0o600) -> None:
    """Copy `src` (a photo or a crop) to `dst`; `dst` appears whole or not at all."""
    write_atomic(dst, src.read_bytes(), mode)


def move(src: Path, dst: Path) -> bool:
    """Rename `src` to `dst` (folders made); False when `src` is gone (already moved)."""
    if not src.exists() and not src.is_symlink():
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem: copy, then remove
        shutil.move(str(src), str(dst))
    sync_dir(src.parent)
    sync_dir(dst.parent)
    return True


def remove(path: Path) -> None:
    """Delete a file or a folder tree; nothing when it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def leftovers(folder: Path) -> list[Path]:
    """Temp files of interrupted changes in `folder` (not below it)."""
    try:
        return [folder / n for n in os.listdir(folder) if n.endswith(TMP_SUFFIX)]
    except OSError:
        return []
