"""Name or ignore an unknown visitor on request (Home Assistant, a script), off the capture loop.

Requests are handled one at a time in a worker thread: an enrolment refits the model in about
a second, writes it, and the loop's model watch reloads it (edge/library, edge/watch.py).
"""

from __future__ import annotations

import logging
import queue
import threading

from edge.config import Config
from edge.errors import UserError

log = logging.getLogger(__name__)

PENDING = 8  # requests waiting beyond this are refused (a flood of button presses)


class VisitorActions:
    """request(visit, name) names a saved unknown visitor; name None ignores them."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.done: list[dict] = []  # results, newest last (for tests and the log)
        self._queue: queue.Queue[tuple[int, str | None] | None] = queue.Queue(PENDING)
        self._thread = threading.Thread(target=self._run, name="visitor-actions", daemon=True)
        self._thread.start()

    def request(self, visit: int, name: str | None) -> bool:
        """Queue one request; False (logged) when too many are waiting."""
        try:
            self._queue.put_nowait((visit, name))
        except queue.Full:
            log.warning("visitor %d: ignored, %d requests are already waiting", visit, PENDING)
            return False
        return True

    def _run(self) -> None:
        from edge.library import FaceLibrary

        while (item := self._queue.get()) is not None:
            visit, name = item
            try:
                self.done.append(FaceLibrary(self.cfg).name_visitor(visit, name))
            except (UserError, OSError) as exc:  # OSError: a read-only models/ under systemd
                why = exc if isinstance(exc, UserError) else f"{exc.filename}: {exc.strerror}"
                log.error("cannot %s visitor %d: %s", "name" if name else "ignore", visit, why)
            except Exception:  # the loop must go on whatever one request does
                log.exception("visitor %d: unexpected error", visit)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the request under way, drop the waiting ones, stop the thread."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)
