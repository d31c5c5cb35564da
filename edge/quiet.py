"""Silence native libraries that write to file descriptor 2 behind Python's back."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[TextIO]:
    """Send fd 2 to /dev/null for the block (OpenCV's protobuf, TFLite's converter).

    Yields a stream on the real stderr, for output that must still be seen (a progress bar).
    Other threads' log lines wait for the block instead of going to /dev/null with it (fd 2
    is the whole process's): the root handlers' locks are held meanwhile.
    """
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.acquire()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with os.fdopen(saved, "w", closefd=False) as real:
            yield real
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        for handler in reversed(handlers):
            handler.release()
