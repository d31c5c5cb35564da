"""Name or ignore an unknown visitor on request (Home Assistant, a script), off the capture loop.

Requests are handled one at a time in a worker thread: an enrolment refits the model in about
a second, writes it, and the loop's model watch reloads it (edge/library, edge/watch.py).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from edge.config import Config
from edge.errors import UserError

log = logging.getLogger(__name__)

PENDING = 8  # requests waiting beyond this are refused (a flood of button presses)


Result = Callable[[int, "str | None", "str | None"], None]


class VisitorActions:
    """request(visit, name) names a saved unknown visitor; name None ignores them.

    on_result(visit, name, error) is called from the worker when each request is done,
    error None on success, else the one-line reason."""

    def __init__(self, cfg: Config, on_result: Result | None = None) -> None:
        self.cfg = cfg
        self.on_result = on_result
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
            error: str | None = None
            try:
                result = FaceLibrary(self.cfg).name_visitor(visit, name)
                self.done.append(result)
                name = result.get("name", name)
            except (UserError, OSError) as exc:  # OSError: a read-only models/ under systemd
                error = str(
                    exc if isinstance(exc, UserError) else f"{exc.filename}: {exc.strerror}"
                )
                log.error("cannot %s visitor %d: %s", "name" if name else "ignore", visit, error)
            except Exception as exc:  # the loop must go on whatever one request does
                log.exception("visitor %d: unexpected error", visit)
                error = f"unexpected error: {exc}"
            if self.on_result is not None:
                try:
                    self.on_result(visit, name, error)
                except Exception:
                    log.exception("visitor %d: reporting the result failed", visit)

    def close(self, timeout: float = 10.0) -> None:
        """Finish the request under way, drop the waiting ones, stop the thread."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)
