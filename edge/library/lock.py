"""One change of a face library at a time: a lock per process and a file lock across them."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_LOCKS: dict[str, threading.RLock] = {}
_GUARD = threading.Lock()


def lock_path(model: Path) -> Path:
    """The lock file beside a model: `.faces.lock` for faces.tflite."""
    return model.with_name(f".{model.stem}.lock")


@contextmanager
def library_lock(model: Path) -> Iterator[None]:
    """Hold the library of `model`: threads of this process, then other processes, wait."""
    key = os.path.realpath(model)
    with _GUARD:
        lock = _LOCKS.setdefault(key, threading.RLock())
    with lock:
        path = lock_path(model)
        try:  # readable by all: the service and the Pi's user both lock it (systemd/install.sh)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock
