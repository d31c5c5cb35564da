"""Presence over MQTT: per-person and unknown ON/OFF, attributes, last person, snapshot,
the last unknown visitor, event JSON, stats and the recognition switch's state."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from edge.mqtt.messages import Message, iso, person_topic, to_json
from edge.mqtt.transport import Transport
from edge.slugs import unique_slug

THERMAL = Path("/sys/class/thermal")


def cpu_temperature_file() -> Path | None:
    """The kernel's CPU thermal zone (a Pi's cpu-thermal), or None on machines without one."""
    zones = sorted(THERMAL.glob("thermal_zone*"))
    for zone in zones:
        try:
            kind = (zone / "type").read_text().strip().lower()
        except OSError:
            continue
        if "cpu" in kind or "soc" in kind or "x86_pkg" in kind:
            return zone / "temp"
    return zones[0] / "temp" if zones else None


def read_celsius(path: Path | None) -> float | None:
    """Millidegrees in `path` as degrees Celsius; None when absent or unreadable."""
    if path is None:
        return None
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


class Presence:
    """Turns the loop's events into retained state messages and the event stream."""

    def __init__(self, transport: Transport, snapshot: bool, thermal: Path | None) -> None:
        self._transport = transport
        self.base = transport.base
        self._snapshot = snapshot
        self._thermal = thermal
        self.enabled = True
        self.switched_off = 0
        self._slugs: dict[str, str] = {}
        self._names: set[str] = set()  # people whose visit is on (the loop: one event per visit)
        self._unknown_visits: set[Any] = set()  # unknown visits going on (one per visit id)
        self._present: set[str] = set()  # as last published
        self._unknown_on = False
        self._attributes: dict[str, dict[str, Any]] = {}
        self._last_visitor: int | None = None  # the visit id of the latest unknown event
        self._visitor_since = 0.0  # monotonic time it became the latest
        self._lock = threading.Lock()

    def people(self, slugs: dict[str, str], first: bool) -> list[Message]:
        """Use these slugs from now on; OFF for each new person (everyone the first time)
        and, the first time, for unknown plus the switch's state."""
        with self._lock:
            old = set(self._slugs.values())
            self._slugs = dict(slugs)
            new = set(slugs.values())
            fresh = new if first else new - old
            msg = self._transport.msg
            group = [msg(person_topic(self.base, s), b"OFF") for s in sorted(fresh)]
            if first:
                group.append(msg(f"{self.base}/unknown", b"OFF"))
                group.append(msg(f"{self.base}/enabled", b"ON" if self.enabled else b"OFF"))
            return group

    def last_visitor(self) -> tuple[int | None, float]:
        """The visit id of the latest unknown visitor (None before the first one) and for how
        many seconds it has been the latest."""
        with self._lock:
            return self._last_visitor, time.monotonic() - self._visitor_since

    def _slug(self, name: str) -> str:
        if name not in self._slugs:  # an event of a name the model did not list
            self._slugs[name] = unique_slug(name, set(self._slugs.values()))
        return self._slugs[name]

    def _topic(self, name: str) -> str:
        return person_topic(self.base, self._slug(name))

    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        """Queue the state changes, snapshot and event JSON of one event; never blocks."""
        kind = event.get("type")
        name = event.get("name")
        msg = self._transport.msg
        group: list[Message] = []
        with self._lock:
            # Computed before the switch-off reached the loop: nobody is watched any more.
            if not self.enabled:
                return
            if kind == "recognized" and name:
                self._names.add(name)
            elif kind == "unknown":  # a second camera's event of one visit counts once
                self._unknown_visits.add(event.get("visit"))
            elif kind == "left" and name:
                self._names.discard(name)
            elif kind == "left":
                self._unknown_visits.discard(event.get("visit"))
            if kind == "recognized" and name:
                attrs = {
                    "name": name,
                    "confidence": event.get("confidence"),
                    "last_seen": iso(event.get("time")),
                }
                if event.get("camera"):  # "last seen at"
                    attrs["camera"] = event["camera"]
                self._attributes[name] = attrs
                group.append(msg(f"{self._topic(name)}/attributes", to_json(attrs)))
            elif kind == "left" and name and name in self._attributes:
                attrs = {**self._attributes[name], "last_seen": iso(event.get("time"))}
                self._attributes[name] = attrs
                group.append(msg(f"{self._topic(name)}/attributes", to_json(attrs)))
            group.extend(self._changes())
            if kind == "recognized" and name:
                last = {
                    "name": name,
                    "confidence": event.get("confidence"),
                    "track": event.get("track"),
                    "visit": event.get("visit"),
                    "time": iso(event.get("time")),
                }
                if event.get("camera"):
                    last["camera"] = event["camera"]
                group.append(msg(f"{self.base}/last", to_json(last)))
            if snapshot_jpeg and self._snapshot and kind in ("recognized", "unknown"):
                group.append(msg(f"{self.base}/snapshot", bytes(snapshot_jpeg)))
            if kind == "unknown" and isinstance(event.get("visit"), int):
                if event["visit"] != self._last_visitor:
                    self._last_visitor, self._visitor_since = event["visit"], time.monotonic()
                when = iso(event.get("time"))
                visitor = {"visit": self._last_visitor, "visitor": self._last_visitor, "time": when}
                group.append(msg(f"{self.base}/visitor", to_json(visitor)))
                group.append(msg(f"{self.base}/visitor/name", b""))
                if snapshot_jpeg:
                    group.append(msg(f"{self.base}/visitor/image", bytes(snapshot_jpeg)))
            group.append(msg(f"{self.base}/event", to_json(event), retain=False))
            self._transport.enqueue(group)

    def _changes(self) -> list[Message]:
        """ON/OFF messages for people and unknown whose presence changed (lock held)."""
        present = set(self._names)
        unknown = bool(self._unknown_visits)
        msg = self._transport.msg
        out = [msg(self._topic(n), b"ON") for n in sorted(present - self._present)]
        out += [msg(self._topic(n), b"OFF") for n in sorted(self._present - present)]
        if unknown != self._unknown_on:
            out.append(msg(f"{self.base}/unknown", b"ON" if unknown else b"OFF"))
        self._present, self._unknown_on = present, unknown
        return out

    def _forget_everyone(self) -> list[Message]:
        """Nobody present any more (lock held): the OFF messages for those who were."""
        self._names.clear()
        self._unknown_visits.clear()
        return self._changes()

    def leave_all(self) -> list[Message]:
        """OFF for whoever is present (their retained ON would outlive us)."""
        with self._lock:
            return self._forget_everyone()

    def switch(self, on: bool) -> None:
        """The recognition switch: switched off, everyone is forgotten (the loop sends no
        `left` events then: nobody is watched)."""
        with self._lock:
            self.enabled = on
            self.switched_off += 0 if on else 1
            group = [] if on else self._forget_everyone()
            group.append(self._transport.msg(f"{self.base}/enabled", b"ON" if on else b"OFF"))
            self._transport.enqueue(group, bounded=False)

    def stats(self, stats: dict[str, Any]) -> None:
        """Publish the loop's stats (plus CPU temperature and queue counters) when connected."""
        payload = {"fps": None, **stats}
        if payload.get("latency_ms") is None:
            lat = stats.get("latency_s")
            median = lat.get("median") if isinstance(lat, dict) else None
            payload["latency_ms"] = None if median is None else round(median * 1000.0, 1)
        if payload.get("cpu_temp_c") is None:
            payload["cpu_temp_c"] = read_celsius(self._thermal)
        payload["mqtt"] = self._transport.counters()
        self._transport.latest(Message(f"{self.base}/stats", to_json(payload), False, 0))
