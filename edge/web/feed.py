"""What the capture loop hands the web app: events with their reasons, stats, the latest frame.

Every method is cheap and thread-safe: the loop calls them, the web server's threads read.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any

from edge.config import RecognizeConfig
from edge.explain import explain
from edge.history import day_range
from edge.preview import LatestFrame

MAX_EVENTS = 200  # events kept for the Events page (with their snapshots: about 2 MB)
STATUS_EVERY_S = 1.0  # how often the loop hands over its stats


class Feed:
    """Events, status and frames from the loop, for the web server's threads."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.frames = LatestFrame()
        self.camera_frames: dict[str, LatestFrame] = {}  # several cameras: each one's own
        self.started = time.time()
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._snapshots: dict[int, bytes] = {}
        self._ids = itertools.count(1)
        self._status: dict[str, Any] = {}
        self._next_status = 0.0
        self._last = (0.0, 0)  # (monotonic time, frames processed) at the last status()
        self._present: dict[Any, str | None] = {}  # visit -> name (None: not recognized)
        self.news = 0  # events seen so far: the live pages' sign that something happened

    def event(
        self, emitted: Any, snapshot: bytes | None, model: Any | None, rcfg: RecognizeConfig
    ) -> None:
        """One published event (edge.decide.Emitted) and its JPEG snapshot (None for `left`)."""
        event, why = emitted.event, explain(emitted, model, rcfg)
        with self._lock:
            eid = next(self._ids)
            if len(self._events) == self._events.maxlen:
                self._snapshots.pop(self._events[0]["id"], None)
            self._events.append({"id": eid, **event, "why": why, "snapshot": snapshot is not None})
            if snapshot is not None:
                self._snapshots[eid] = snapshot
        self.seen(event)

    def seen(self, event: dict[str, Any]) -> None:
        """An event happened (kept here or in the history): who is here, and news for the
        live pages."""
        with self._lock:
            if event["type"] == "left":
                self._present.pop(event.get("visit"), None)
            else:
                self._present[event.get("visit")] = event["name"]
            self.news += 1

    def present(self) -> list[str]:
        """Who is at the camera now: names, then "visitor N" for each one not recognized."""
        with self._lock:
            found = dict(self._present)
        names = sorted({n for n in found.values() if n}, key=str.casefold)
        return names + [f"visitor {v}" for v, n in sorted(found.items(), key=lambda x: str(x[0])) if not n]  # fmt: skip

    def events(
        self,
        limit: int = 50,
        person: str | None = None,
        day: str | None = None,
        camera: str | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """The newest `limit` events, newest first, filtered like HistoryReader.events (used
        when history.enabled is false; one camera, this run's events only)."""
        with self._lock:
            found = list(self._events)
        found.reverse()
        if person:
            found = [e for e in found if (e["name"] or "unknown") == person]
        if day:
            start, end = day_range(day)
            found = [e for e in found if start <= e["time"] < end]
        if before is not None:
            found = [e for e in found if e["id"] < before]
        return found[:limit]

    def cameras(self) -> list[str]:
        """One camera: no camera filter."""
        return []

    def snapshot(self, event_id: int) -> bytes | None:
        """The JPEG of one kept event, or None."""
        with self._lock:
            return self._snapshots.get(event_id)

    def status_due(self) -> bool:
        """True about once per STATUS_EVERY_S: time for the loop to call status()."""
        now = time.monotonic()
        if now < self._next_status:
            return False
        self._next_status = now + STATUS_EVERY_S
        return True

    def status(self, status: dict[str, Any]) -> None:
        """The loop's latest stats (replaces the previous ones); adds frames/s since the last."""
        now, frames = time.monotonic(), status.get("frames_processed", 0)
        last_t, last_n = self._last
        fps = (frames - last_n) / (now - last_t) if last_t and now > last_t else 0.0
        self._last = (now, frames)
        with self._lock:
            self._status = {**status, "fps": round(fps, 2)}

    def current(self) -> dict[str, Any]:
        """The latest stats with the uptime."""
        with self._lock:
            status = dict(self._status)
        return status | {
            "uptime_s": round(time.time() - self.started, 1),
            "present_names": self.present(),
        }

    def add_cameras(self, names: list[str]) -> None:
        """Several cameras: a Live view for each (in this order)."""
        self.camera_frames = {name: LatestFrame() for name in names}

    def frames_of(self, camera: str | None) -> LatestFrame | None:
        """The Live view of `camera` (the only one when None); None for no such camera."""
        if not camera:
            return next(iter(self.camera_frames.values()), self.frames)
        return self.camera_frames.get(camera)

    def close(self) -> None:
        """End the live streams."""
        self.frames.close()
        for frames in self.camera_frames.values():
            frames.close()
