"""Outputs: where the loop's results go, all called the same way (Output). Sinks are the
outputs that carry presence events (stdout JSON lines here; MQTT in edge/mqtt/)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from edge.config import Config


class Output:
    """One place the loop's results go. The loop calls every output through these methods;
    none may block the capture loop."""

    failure: str | None = None  # set when the output cannot go on (the loop stops with exit 2)

    def start(self, labels: list[str], slugs: dict[str, str] | None = None) -> None:
        """The model's people and their entity slugs (edge.slugs.read_slugs): at start and
        after every model reload."""

    def publish(self, emitted: Any, snapshot_jpeg: bytes | None, model: Any) -> None:
        """One edge.decide.Emitted event, its JPEG crop and the model that judged it."""

    def stats(self, stats: dict[str, Any]) -> None:
        """Periodic statistics."""

    def tick(self, status: Callable[[], dict[str, Any]]) -> None:
        """Every frame; `status()` builds the loop's status when the output wants it."""

    def wants_image(self) -> bool:
        """Whether show() should get this frame's annotated image."""
        return False

    def show(self, image_bgr: Any) -> bool:
        """The annotated frame; False when the user closed the preview (the loop stops)."""
        return True

    def reload(self, cfg: Config) -> None:
        """A reloaded config."""

    def close(self) -> None:
        """Flush what is queued and stop."""


class Sink(Output):
    """The output that carries presence events and Home Assistant's commands."""

    enabled: bool = True
    switched_off: int = 0  # how many times recognition was switched off (the loop's forget cue)
    # set by the loop: called as handler(visit, name) to name a visitor, name None to ignore
    visitor_handler: Callable[[int, str | None], bool] | None = None

    def publish(self, emitted: Any, snapshot_jpeg: bytes | None, model: Any) -> None:
        self.event(emitted.event, snapshot_jpeg)

    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        """One event: the design's event JSON (recognized, unknown, left)."""
        raise NotImplementedError

    def visitor_done(self, visit: int, name: str | None, error: str | None) -> None:
        """A naming (name None: ignoring) request from visitor_handler is done; error None
        on success, else why not."""


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
