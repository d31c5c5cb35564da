"""Notice that a file was replaced (a new model from `edge enroll` or `convert train`)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _signature(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class FileWatch:
    """changed() is True once each time `path` is created, replaced or removed (polled).

    With no path (or interval 0) nothing ever changes."""

    def __init__(self, path: str | Path | None, interval_s: float) -> None:
        self.path = Path(path) if path is not None else None
        self.interval_s = interval_s if path is not None else 0.0
        self._seen = _signature(self.path)
        self._next = time.monotonic() + interval_s

    def changed(self) -> bool:
        """Whether the file differs from the last look; looks at most every `interval_s`."""
        if self.interval_s <= 0 or time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.interval_s
        now = _signature(self.path)
        if now == self._seen:
            return False
        self._seen = now
        return True
