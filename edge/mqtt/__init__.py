"""MQTT output: the design's topic table and Home Assistant discovery, over paho-mqtt 2.x.

transport.py publishes and subscribes; discovery.py, presence.py and commands.py decide what
is said; MqttSink (here) composes them behind the loop's Sink interface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from edge.config import Config
from edge.errors import UserError
from edge.mqtt.commands import Commands
from edge.mqtt.discovery import Discovery
from edge.mqtt.messages import SHOWN_CHARS, check_topic_part
from edge.mqtt.presence import Presence, cpu_temperature_file
from edge.mqtt.trackers import Trackers
from edge.mqtt.transport import Transport
from edge.publish import Sink
from edge.slugs import person_slugs, slugify

__all__ = ["SHOWN_CHARS", "MqttSink"]


class MqttSink(Sink):
    """Publishes presence, events, snapshots and stats; Home Assistant discovery on connect."""

    def __init__(self, cfg: Config) -> None:
        m = cfg.mqtt
        if not m.host:
            raise UserError(f"{cfg.source_file}: mqtt.host is empty: set it to use --sink mqtt")
        check_topic_part(m.topic_prefix, "mqtt.topic_prefix", cfg.source_file)
        device_id = cfg.device_id()
        check_topic_part(device_id, "mqtt.device_id", cfg.source_file)
        if "/" in device_id:
            raise UserError(f"{cfg.source_file}: mqtt.device_id: {device_id!r} may not contain '/'")
        check_topic_part(m.discovery_prefix, "mqtt.discovery_prefix", cfg.source_file)
        self.base = f"{m.topic_prefix}/{device_id}"
        self.device_id = device_id
        self.node = slugify(device_id)
        self._closed = False
        thermal = cpu_temperature_file()
        self.transport = Transport(
            cfg,
            self.base,
            device_id,
            subscriptions=[],
            on_message=self._on_message,
            announce=lambda: self.entities.messages(),
        )
        self.entities = Discovery(cfg, self.transport, device_id, self.node, thermal)
        self.presence = Presence(self.transport, m.snapshot, thermal)
        self.commands = Commands(self.transport, self.presence)
        self.trackers = Trackers(self.transport, m.tracker_away_s) if m.tracker_away_s > 0 else None
        if self.trackers is not None:
            self.commands.on_switch = lambda on: None if on else self.trackers.left_all()
        self._slugs: dict[str, str] = {}
        self.transport.subscriptions = self.entities.subscriptions() + self.commands.subscriptions()

    @property
    def enabled(self) -> bool:  # type: ignore[override]
        return self.presence.enabled

    @property
    def switched_off(self) -> int:  # type: ignore[override]
        return self.presence.switched_off

    @property
    def failure(self) -> str | None:  # type: ignore[override]
        return self.transport.failure

    @property
    def visitor_handler(self) -> Callable[[int, str | None], bool] | None:  # type: ignore[override]
        return self.commands.visitor_handler

    @visitor_handler.setter
    def visitor_handler(self, handler: Callable[[int, str | None], bool] | None) -> None:
        self.commands.visitor_handler = handler

    @property
    def dropped(self) -> int:
        return self.transport.dropped

    @property
    def reconnects(self) -> int:
        return self.transport.reconnects

    @property
    def connected(self) -> bool:
        return self.transport.connected

    def start(self, labels: list[str], slugs: dict[str, str] | None = None) -> None:
        """Know the model's people and their slugs (person_slugs(labels) when not given), set
        every presence OFF, connect in the background.

        Called again (a reloaded model): discovery is re-sent; a person whose slug stays keeps
        their entity under the new name, slugs no longer given are removed."""
        slugs = person_slugs(labels) if slugs is None else {label: slugs[label] for label in labels}
        first = not self.transport.started
        group = self.presence.people(slugs, first)
        group += self.entities.people(slugs)
        self._slugs = slugs
        if self.trackers is not None:
            group += self.trackers.people(list(slugs.values()))
        if first:
            self.transport.start(group)
        else:
            self.transport.enqueue(group, bounded=False)
            self.transport.announce_now()  # a new model: announce now

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery: config topic -> payload for every entity of this device."""
        return self.entities.payloads()

    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        """Queue the state changes, snapshot and event JSON of one event; never blocks."""
        self.presence.event(event, snapshot_jpeg)
        slug = self._slugs.get(event.get("name") or "")
        if self.trackers is not None and slug and self.presence.enabled:
            if event.get("type") == "recognized":
                self.trackers.arrived(slug)
            elif event.get("type") == "left":
                self.trackers.left(slug)

    def visitor_done(self, visit: int, name: str | None, error: str | None) -> None:
        """The text entity's state says what a naming or ignoring request did."""
        self.commands.done(visit, name, error)

    def stats(self, stats: dict[str, Any]) -> None:
        """Publish the loop's stats (plus CPU temperature and queue counters) when connected."""
        self.presence.stats(stats)

    def close(self) -> None:
        """Presence OFF for whoever is present (their retained ON would outlive us), then
        `offline`; wait for the queue to drain; disconnect."""
        if self._closed:
            return
        self._closed = True
        if self.trackers is not None:
            self.trackers.close()
        status = self.transport.msg(f"{self.base}/status", b"offline")
        self.transport.close([*self.presence.leave_all(), status])

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        """Route one message from the broker (paho's network thread)."""
        topic = msg.topic
        if self.commands.handles(topic):
            self.commands.handle(topic, msg.payload, bool(msg.retain))
        elif self.entities.handles(topic):
            self.entities.handle(topic, msg.payload.decode("utf-8", "replace").strip())
