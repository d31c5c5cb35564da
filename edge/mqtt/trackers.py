"""Per-person device_tracker states for Home Assistant's `person` integration: `home` when
the person is recognized, `not_home` once they have been gone from the camera for
mqtt.tracker_away_s (a timer, cancelled when they come back)."""

from __future__ import annotations

import threading

from edge.mqtt.messages import Message
from edge.mqtt.transport import Transport

HOME, NOT_HOME = b"home", b"not_home"


def tracker_topic(base: str, slug: str) -> str:
    """A person's device_tracker state topic."""
    return f"{base}/tracker/{slug}"


class Trackers:
    """Home / not_home per person slug, as retained messages on tracker_topic()."""

    def __init__(self, transport: Transport, away_s: float) -> None:
        self._transport = transport
        self.away_s = away_s
        self._known: set[str] = set()
        self._home: set[str] = set()
        self._timers: dict[str, threading.Timer] = {}
        self._lock = threading.Lock()

    def people(self, slugs: list[str]) -> list[Message]:
        """not_home for each slug not seen before (everyone at start)."""
        with self._lock:
            fresh = sorted(set(slugs) - self._known)
            self._known |= set(fresh)
            return [self._msg(s, NOT_HOME) for s in fresh]

    def arrived(self, slug: str) -> None:
        """Recognized: home now, and no pending not_home."""
        with self._lock:
            self._cancel(slug)
            if slug not in self._home:
                self._home.add(slug)
                self._send(slug, HOME)

    def left(self, slug: str) -> None:
        """Gone from the camera: not_home after away_s unless they come back."""
        with self._lock:
            if slug not in self._home or slug in self._timers:
                return
            timer = threading.Timer(self.away_s, self._away, (slug,))
            timer.daemon = True
            self._timers[slug] = timer
            timer.start()

    def left_all(self) -> None:
        """Nobody is watched any more (recognition switched off): everyone home leaves."""
        with self._lock:
            home = list(self._home)
        for slug in home:
            self.left(slug)

    def close(self) -> None:
        """Cancel the pending timers (the availability topic says offline next)."""
        with self._lock:
            for slug in list(self._timers):
                self._cancel(slug)

    def _away(self, slug: str) -> None:
        with self._lock:
            if self._timers.get(slug) is not threading.current_thread():
                return  # cancelled or replaced meanwhile
            del self._timers[slug]
            self._home.discard(slug)
            self._send(slug, NOT_HOME)

    def _cancel(self, slug: str) -> None:
        timer = self._timers.pop(slug, None)
        if timer is not None:
            timer.cancel()

    def _msg(self, slug: str, payload: bytes) -> Message:
        return self._transport.msg(tracker_topic(self._transport.base, slug), payload)

    def _send(self, slug: str, payload: bytes) -> None:
        self._transport.enqueue([self._msg(slug, payload)], bounded=False)
