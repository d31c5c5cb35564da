"""Event sinks: where presence events go. The stdout JSON-lines sink lives here; MQTT in edge/mqtt.py."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from edge.config import Config


class Sink:
    """Receives events from the loop. Implementations must never block the capture loop."""

    enabled: bool = True
    failure: str | None = None  # set when the sink cannot go on (the loop stops with exit 2)
    # set by the loop: called as handler(visit, name) to name a visitor, name None to ignore
    visitor_handler: Callable[[int, str | None], bool] | None = None

    def start(self, labels: list[str], slugs: dict[str, str] | None = None) -> None:
        """The model's people and their entity slugs (edge.slugs.read_slugs): at start and
        after every model reload."""

    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        """One event: the design's event JSON (recognized, unknown, left)."""
        raise NotImplementedError

    def visitor_done(self, visit: int, name: str | None, error: str | None) -> None:
        """A naming (name None: ignoring) request from visitor_handler is done; error None
        on success, else why not."""

    def stats(self, stats: dict[str, Any]) -> None:
        """Periodic statistics."""

    def close(self) -> None:
        """Flush what is queued and say goodbye (offline)."""


class StdoutSink(Sink):
    """One JSON object per event on stdout, flushed at once."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        line = json.dumps(event, separators=(", ", ": "))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


def create_sink(cfg: Config, kind: str | None = None) -> Sink:
    """The sink chosen by --sink, else MQTT when mqtt.host is set, else stdout."""
    kind = kind or ("mqtt" if cfg.mqtt.host else "stdout")
    if kind == "mqtt":
        from edge.mqtt import MqttSink

        return MqttSink(cfg)
    return StdoutSink()
