"""MQTT sink: the design's topic table and Home Assistant discovery, over paho-mqtt 2.x.

The caller only appends to a bounded queue; one worker thread publishes it in order once
the broker is up; paho's network thread reconnects with backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge import __version__
from edge.config import Config
from edge.errors import UserError
from edge.publish import Sink
from edge.slugs import SlugBook, slug_book_path, slugify

log = logging.getLogger("edge.mqtt")

WINDOW = 20  # messages handed to paho and not yet acknowledged by the broker
FLUSH_TIMEOUT_S = 5.0  # close() waits this long for the queue to drain
RECONNECT_MIN_S = 1
THERMAL = Path("/sys/class/thermal")
NAME_MAX = 64  # characters of a visitor's name set from Home Assistant
EVENT_TYPES = ("recognized", "unknown", "left")
REDISCOVER_MIN_S = 10.0  # Home Assistant `online` floods: at most one re-announcement per this
SHOWN_CHARS = 60  # what is logged of a payload from the network


@dataclass(frozen=True)
class Message:
    """One MQTT publish."""

    topic: str
    payload: bytes
    retain: bool
    qos: int


def shown(payload: str | bytes, limit: int = SHOWN_CHARS) -> str:
    """repr() of a network payload, cut to `limit` characters with its full length said."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def plain(text: str, limit: int = 2 * SHOWN_CHARS) -> str:
    """`text` as is when short and printable (a topic we built), else shown(text)."""
    return text if len(text) <= limit and text.isprintable() else shown(text, limit)


def client_id(device_id: str) -> str:
    """MQTT client id: edge-faces-<node>, plus a hash of the raw id when slugging changed it,
    so "Front Door" and "front-door" never knock each other off the broker."""
    node = slugify(device_id)
    if node == device_id:
        return f"edge-faces-{node}"
    return f"edge-faces-{node}-{hashlib.sha256(device_id.encode()).hexdigest()[:8]}"


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


def _json(obj: Any) -> bytes:
    def plain(value: Any) -> Any:
        if hasattr(value, "item"):  # numpy scalars
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    return json.dumps(obj, default=plain, separators=(",", ":")).encode()


def _iso(unix_time: float | None) -> str:
    t = time.time() if unix_time is None else float(unix_time)
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _check_topic_part(value: str, key: str, source: str) -> None:
    if not value or any(c in value for c in "+#\0") or value.startswith("/") or "//" in value:
        raise UserError(f"{source}: {key}: {value!r} is not usable in an MQTT topic")


def _published(info: paho.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged it. paho's is_published() raises for a QoS 1 message
    handed over while disconnected, which paho still keeps and re-sends after reconnecting."""
    if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
        return info._published
    return info.is_published()


class _Client(paho.Client):
    """paho client that reports why a (re)connection attempt raised, for one clear log line."""

    on_connect_error: Any = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            if self.on_connect_error:
                self.on_connect_error(exc)
            raise


class MqttSink(Sink):
    """Publishes presence, events, snapshots and stats; Home Assistant discovery on connect."""

    def __init__(self, cfg: Config) -> None:
        m = cfg.mqtt
        if not m.host:
            raise UserError(f"{cfg.source_file}: mqtt.host is empty: set it to use --sink mqtt")
        _check_topic_part(m.topic_prefix, "mqtt.topic_prefix", cfg.source_file)
        device_id = cfg.device_id()
        _check_topic_part(device_id, "mqtt.device_id", cfg.source_file)
        if "/" in device_id:
            raise UserError(f"{cfg.source_file}: mqtt.device_id: {device_id!r} may not contain '/'")
        _check_topic_part(m.discovery_prefix, "mqtt.discovery_prefix", cfg.source_file)
        self.enabled = True
        self.base = f"{m.topic_prefix}/{device_id}"
        self.device_id = device_id
        self.node = slugify(device_id)
        self.dropped = 0
        self.reconnects = 0
        self._m = m
        self._web_url = cfg.web_url()
        self._qos = m.qos
        self._where = f"{m.host}:{m.port}"
        self._thermal = cpu_temperature_file()
        self._labels: list[str] = []
        self._book = SlugBook(slug_book_path(cfg.recognize.model))
        self._slugs: dict[str, str] = {}
        self._names: set[str] = set()  # people whose visit is on (the loop: one event per visit)
        self._unknown_visits = 0
        self._last_visitor: int | None = None  # the visit id of the latest unknown event
        self._present: set[str] = set()  # as last published
        self._unknown_on = False
        self._attributes: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._queue: deque[list[Message]] = deque()
        self._current: deque[Message] = deque()  # worker: the group being sent
        self._inflight: deque[tuple[paho.MQTTMessageInfo, Message]] = deque()
        self._stats_msg: Message | None = None
        self._published_retained: dict[str, Message] = {}  # worker: what the broker should hold
        self._discovery_topics: set[str] = set()
        self._cleared: set[str] = set()
        self._connected = False
        self._epoch = 0
        self._rediscover = False
        self._rediscover_at = 0.0  # monotonic time before which a re-announcement waits
        self._ready_mid: int | None = None  # SUBACK that ends the retained-config check
        self.failure: str | None = None  # a reason to stop (a clashing device id)
        self._halt = False
        self._started = False
        self._closed = False
        self._problem: str | None = None
        self._worker: threading.Thread | None = None
        self._client = self._make_client(cfg)

    # --- setup -----------------------------------------------------------------------------
    def _make_client(self, cfg: Config) -> _Client:
        m = self._m
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id(self.device_id),
            clean_session=True,
            protocol=paho.MQTTv311,
        )
        if m.username:
            password = cfg.mqtt_password()
            if not password:
                log.warning(
                    "mqtt.username is set but %s is empty: connecting without a password",
                    self._password_source().removeprefix("the password in "),
                )
            client.username_pw_set(m.username, password or None)
        if m.tls.ca_file:
            try:
                client.tls_set(
                    ca_certs=m.tls.ca_file,
                    certfile=m.tls.certfile or None,
                    keyfile=m.tls.keyfile or None,
                    cert_reqs=ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise UserError(
                    f"{cfg.source_file}: mqtt.tls: cannot load {m.tls.ca_file}"
                    f"{' / ' + m.tls.certfile if m.tls.certfile else ''}: {exc}"
                ) from None
            if m.tls.insecure:
                client.tls_insecure_set(True)
        client.will_set(f"{self.base}/status", "offline", qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, m.reconnect_max_s)
        client.max_inflight_messages_set(0)  # our own window bounds what is in flight
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_connect_error = self._on_connect_error
        return client

    def start(self, labels: list[str]) -> None:
        """Know the model's people, set every presence OFF, connect in the background.

        Called again with other labels (a reloaded model): discovery is re-sent and the
        entities of people no longer in the model are removed."""
        with self._cond:
            old = set(self._book.slugs(self._labels).values())
            self._labels = list(labels)
            self._slugs = self._book.slugs(self._labels)
            new = set(self._slugs.values())
            fresh = new if not self._started else new - old
            group = [self._msg(self._person_topic(s), b"OFF") for s in sorted(fresh)]
            self._discovery_topics = set(self.discovery())
            self._cleared -= self._discovery_topics
            if self._started:
                for slug in sorted(old - new):
                    group += self._removal(self._person_config_topic(slug))
                self._rediscover, self._rediscover_at = True, 0.0  # a new model: announce now
                self._enqueue(group, bounded=False)
                return
            group.append(self._msg(f"{self.base}/unknown", b"OFF"))
            group.append(self._msg(f"{self.base}/enabled", b"ON" if self.enabled else b"OFF"))
            self._queue.appendleft(group)
            self._started = True
        self._worker = threading.Thread(target=self._run, name="mqtt-publish", daemon=True)
        self._worker.start()
        self._client.connect_async(self._m.host, self._m.port, self._m.keepalive_s)
        self._client.loop_start()

    # --- topics and payloads ---------------------------------------------------------------
    def _msg(self, topic: str, payload: bytes, retain: bool = True) -> Message:
        return Message(topic, payload, retain, self._qos)

    def _person_topic(self, slug: str) -> str:
        return f"{self.base}/person/{slug}"

    def _slug(self, name: str) -> str:
        if name not in self._slugs:
            self._slugs[name] = self._book.slugs([name])[name]
        return self._slugs[name]

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery: config topic -> payload for every entity of this device."""
        if not self._m.discovery:
            return {}
        prefix, base, node = self._m.discovery_prefix, self.base, self.node
        device = {
            "identifiers": [f"edge_faces_{node}"],
            "name": f"edge-faces {self.device_id}",
            "manufacturer": "edge-faces",
            "model": "Face recognizer",
            "sw_version": __version__,
        }
        if self._web_url:
            device["configuration_url"] = self._web_url  # the face library page (docs/web.md)
        common = {
            "device": device,
            "availability_topic": f"{base}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
            "origin": {"name": "edge-faces", "sw_version": __version__},
        }
        out: dict[str, dict[str, Any]] = {}

        def add(component: str, object_id: str, **cfg: Any) -> None:
            topic = f"{prefix}/{component}/{node}/{object_id}/config"
            out[topic] = {
                **cfg,
                "unique_id": f"edge_faces_{node}_{object_id}",
                "object_id": f"{node}_{object_id}",
                **common,
            }

        state = {"payload_on": "ON", "payload_off": "OFF", "qos": self._qos}
        for label, slug in self._book.slugs(self._labels).items():
            add(
                "binary_sensor",
                f"person_{slug}",
                name=label,
                state_topic=self._person_topic(slug),
                json_attributes_topic=f"{self._person_topic(slug)}/attributes",
                device_class="occupancy",
                icon="mdi:account",
                **state,
            )
        add(
            "binary_sensor",
            "unknown",
            name="Unknown person",
            state_topic=f"{base}/unknown",
            device_class="occupancy",
            icon="mdi:account-question",
            **state,
        )
        add(
            "sensor",
            "last_person",
            name="Last person",
            state_topic=f"{base}/last",
            value_template="{{ value_json.name }}",
            json_attributes_topic=f"{base}/last",
            icon="mdi:account-clock",
            qos=self._qos,
        )
        add(
            "event",
            "face",
            name="Face",
            state_topic=f"{base}/event",
            event_types=list(EVENT_TYPES),
            value_template=(
                "{{ {'event_type': value_json.type, 'name': value_json.name, "
                "'confidence': value_json.confidence, 'track': value_json.track, "
                "'visit': value_json.visit} | to_json }}"
            ),
            icon="mdi:face-recognition",
            qos=self._qos,
        )
        add(
            "image",
            "snapshot",
            name="Snapshot",
            image_topic=f"{base}/snapshot",
            content_type="image/jpeg",
        )
        add(
            "image",
            "last_visitor",
            name="Last unknown visitor",
            image_topic=f"{base}/visitor/image",
            content_type="image/jpeg",
            json_attributes_topic=f"{base}/visitor",
        )
        add(
            "text",
            "name_visitor",
            name="Name the last visitor",
            command_topic=f"{base}/visitor/name/set",
            state_topic=f"{base}/visitor/name",
            min=0,
            max=NAME_MAX,
            icon="mdi:account-edit",
            qos=self._qos,
        )
        add(
            "button",
            "ignore_visitor",
            name="Ignore the last visitor",
            command_topic=f"{base}/visitor/ignore",
            payload_press="PRESS",
            icon="mdi:account-cancel",
            qos=self._qos,
        )
        diag = {"state_topic": f"{base}/stats", "entity_category": "diagnostic"}
        add(
            "sensor",
            "fps",
            name="FPS",
            value_template="{{ value_json.fps }}",
            unit_of_measurement="fps",
            state_class="measurement",
            icon="mdi:speedometer",
            **diag,
        )
        add(
            "sensor",
            "latency",
            name="Latency",
            value_template="{{ value_json.latency_ms }}",
            unit_of_measurement="ms",
            device_class="duration",
            state_class="measurement",
            **diag,
        )
        if self._thermal is not None:
            add(
                "sensor",
                "cpu_temperature",
                name="CPU temperature",
                value_template="{{ value_json.cpu_temp_c }}",
                unit_of_measurement="°C",
                device_class="temperature",
                state_class="measurement",
                **diag,
            )
        add(
            "sensor",
            "mqtt_dropped",
            name="MQTT messages dropped",
            value_template="{{ value_json.mqtt.dropped }}",
            state_class="total_increasing",
            icon="mdi:message-alert",
            **diag,
        )
        add(
            "switch",
            "enabled",
            name="Recognition",
            state_topic=f"{base}/enabled",
            command_topic=f"{base}/enabled/set",
            payload_on="ON",
            payload_off="OFF",
            state_on="ON",
            state_off="OFF",
            entity_category="config",
            icon="mdi:face-recognition",
            qos=self._qos,
        )
        return out

    # --- the Sink interface ----------------------------------------------------------------
    def event(self, event: dict[str, Any], snapshot_jpeg: bytes | None = None) -> None:
        """Queue the state changes, snapshot and event JSON of one event; never blocks."""
        kind = event.get("type")
        name = event.get("name")
        track = event.get("track")
        group: list[Message] = []
        with self._cond:
            # Computed before the switch-off reached the loop: nobody is watched any more.
            if not self.enabled:
                return
            if kind == "recognized" and name:
                self._names.add(name)
            elif kind == "unknown":
                self._unknown_visits += 1
            elif kind == "left" and name:
                self._names.discard(name)
            elif kind == "left":
                self._unknown_visits = max(0, self._unknown_visits - 1)
            if kind == "recognized" and name:
                attrs = {
                    "name": name,
                    "confidence": event.get("confidence"),
                    "last_seen": _iso(event.get("time")),
                }
                self._attributes[name] = attrs
                group.append(
                    self._msg(f"{self._person_topic(self._slug(name))}/attributes", _json(attrs))
                )
            elif kind == "left" and name and name in self._attributes:
                attrs = {**self._attributes[name], "last_seen": _iso(event.get("time"))}
                self._attributes[name] = attrs
                group.append(
                    self._msg(f"{self._person_topic(self._slug(name))}/attributes", _json(attrs))
                )
            group.extend(self._presence_changes())
            if kind == "recognized" and name:
                last = {
                    "name": name,
                    "confidence": event.get("confidence"),
                    "track": track,
                    "visit": event.get("visit"),
                    "time": _iso(event.get("time")),
                }
                group.append(self._msg(f"{self.base}/last", _json(last)))
            if snapshot_jpeg and self._m.snapshot and kind in ("recognized", "unknown"):
                group.append(self._msg(f"{self.base}/snapshot", bytes(snapshot_jpeg)))
            if kind == "unknown" and isinstance(event.get("visit"), int):
                self._last_visitor = event["visit"]
                visitor = {"visitor": self._last_visitor, "time": _iso(event.get("time"))}
                group.append(self._msg(f"{self.base}/visitor", _json(visitor)))
                group.append(self._msg(f"{self.base}/visitor/name", b""))
                if snapshot_jpeg:
                    group.append(self._msg(f"{self.base}/visitor/image", bytes(snapshot_jpeg)))
            group.append(self._msg(f"{self.base}/event", _json(event), retain=False))
            self._enqueue(group)

    def _presence_changes(self) -> list[Message]:
        """ON/OFF messages for people and unknown whose presence changed (lock held)."""
        present = set(self._names)
        unknown = self._unknown_visits > 0
        out = [
            self._msg(self._person_topic(self._slug(n)), b"ON")
            for n in sorted(present - self._present)
        ]
        out += [
            self._msg(self._person_topic(self._slug(n)), b"OFF")
            for n in sorted(self._present - present)
        ]
        if unknown != self._unknown_on:
            out.append(self._msg(f"{self.base}/unknown", b"ON" if unknown else b"OFF"))
        self._present, self._unknown_on = present, unknown
        return out

    def _forget_everyone(self) -> list[Message]:
        """Nobody present any more (lock held): the OFF messages for those who were."""
        self._names.clear()
        self._unknown_visits = 0
        return self._presence_changes()

    def _enqueue(self, group: list[Message], bounded: bool = True) -> None:
        """Append one group (lock held). Beyond the bound the oldest group's event is dropped;
        its retained states are folded into the next group so presence stays right."""
        if bounded and len(self._queue) >= self._m.queue_size:
            oldest = self._queue.popleft()
            self.dropped += sum(1 for msg in oldest if not msg.retain)
            keep = {msg.topic: msg for msg in oldest if msg.retain}
            if self._queue:
                nxt = self._queue.popleft()
                newer = {msg.topic for msg in nxt}
                carried = [msg for msg in keep.values() if msg.topic not in newer]
                self._queue.appendleft(carried + nxt)
            else:
                group = [
                    msg for msg in keep.values() if msg.topic not in {g.topic for g in group}
                ] + group
        self._queue.append(group)
        self._cond.notify_all()

    def stats(self, stats: dict[str, Any]) -> None:
        """Publish the loop's stats (plus CPU temperature and queue counters) when connected."""
        payload = {"fps": None, **stats}
        if payload.get("latency_ms") is None:
            lat = stats.get("latency_s")
            median = lat.get("median") if isinstance(lat, dict) else None
            payload["latency_ms"] = None if median is None else round(median * 1000.0, 1)
        if payload.get("cpu_temp_c") is None:
            payload["cpu_temp_c"] = read_celsius(self._thermal)
        with self._cond:
            payload["mqtt"] = self.counters()
            self._stats_msg = Message(f"{self.base}/stats", _json(payload), False, 0)
            self._cond.notify_all()

    def counters(self) -> dict[str, Any]:
        """Connection and queue counters, for stats."""
        return {
            "queued": len(self._queue),  # events (with their state messages)
            "dropped": self.dropped,
            "reconnects": self.reconnects,
        }

    def close(self) -> None:
        """Presence OFF for whoever is present (their retained ON would outlive us), then
        `offline`; wait up to FLUSH_TIMEOUT_S for the queue to drain; disconnect."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            group = self._forget_everyone()
            group.append(self._msg(f"{self.base}/status", b"offline"))
            self._enqueue(group, bounded=False)
        if not self._started:
            return
        if self.failure:  # never announced: nothing of ours to flush
            self._halt = True
            self._client.disconnect()
            self._client.loop_stop()
            return
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        with self._cond:
            while time.monotonic() < deadline and not self._drained():
                self._cond.wait(0.05)
            left = sum(len(g) for g in self._queue) + len(self._current)
            self._halt = True
            self._cond.notify_all()
        if left:
            log.warning(
                "MQTT: %d messages not delivered to %s (broker unreachable)", left, self._where
            )
        if self._worker:
            self._worker.join(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()

    def _drained(self) -> bool:
        self._prune()
        return not self._queue and not self._current and not self._inflight

    # --- worker ----------------------------------------------------------------------------
    def _prune(self) -> None:
        while self._inflight and _published(self._inflight[0][0]):
            self._inflight.popleft()

    def _announcement(self) -> list[Message]:
        """What a (re)connection starts with: online, discovery, the retained state."""
        msgs = [self._msg(f"{self.base}/status", b"online")]
        msgs += [self._msg(t, _json(p)) for t, p in self.discovery().items()]
        msgs += [m for t, m in self._published_retained.items() if t != f"{self.base}/status"]
        return msgs

    def _run(self) -> None:
        seen_epoch = 0
        while True:
            with self._cond:
                if self._halt:
                    return
                self._prune()
                if not self._connected:
                    self._cond.wait(0.2)
                    continue
                if self._epoch != seen_epoch:
                    if self._inflight:  # paho re-sends the last connection's messages first
                        self._cond.wait(0.02)
                        continue
                    seen_epoch = self._epoch
                    self._rediscover = False
                    self._current.extendleft(reversed(self._announcement()))
                elif self._rediscover and time.monotonic() >= self._rediscover_at:
                    self._rediscover = False
                    self._rediscover_at = time.monotonic() + REDISCOVER_MIN_S
                    self._current.extendleft(reversed(self._announcement()))
                if not self._current:
                    if self._queue:
                        self._current.extend(self._queue.popleft())
                    elif self._stats_msg is not None:
                        self._current.append(self._stats_msg)
                        self._stats_msg = None
                    else:
                        self._cond.wait(0.5)
                        continue
                if len(self._inflight) >= WINDOW:
                    self._cond.wait(0.01)
                    continue
                msg = self._current.popleft()
            self._send(msg)

    def _send(self, msg: Message) -> None:
        """Hand one message to paho (never with our lock held: paho calls back under its own)."""
        try:
            info = self._client.publish(msg.topic, msg.payload, msg.qos, msg.retain)
        except ValueError as exc:  # payload too large, bad topic: skip this one message
            log.error("MQTT: cannot publish to %s: %s", msg.topic, exc)
            return
        with self._cond:
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and msg.qos == 0:
                self._current.appendleft(msg)  # QoS 0 is not kept by paho: retry after reconnect
                return
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.error("MQTT: publish to %s failed: %s", msg.topic, paho.error_string(info.rc))
                return
            self._inflight.append((info, msg))
            if msg.retain and not msg.topic.startswith(f"{self._m.discovery_prefix}/"):
                if msg.payload:
                    self._published_retained[msg.topic] = msg
                else:
                    self._published_retained.pop(msg.topic, None)

    # --- paho callbacks (network thread) ---------------------------------------------------
    def _report(self, problem: str | None, text: str, level: int = logging.ERROR) -> None:
        """Log once per change of connection state, never once per retry."""
        if problem != self._problem:
            self._problem = problem
            log.log(level, "%s", text)

    def _password_source(self) -> str:
        if self._m.password_file:
            return f"the password in {self._m.password_file}"
        return f"the password in ${self._m.password_env}" if self._m.password_env else "no password"

    def _on_connect_error(self, exc: OSError) -> None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            what = f"TLS certificate check failed: {exc.verify_message} (check mqtt.tls.ca_file {self._m.tls.ca_file} and that mqtt.host matches the certificate)"
        elif isinstance(exc, ssl.SSLError):
            what = f"TLS handshake failed: {exc.reason or exc} (check mqtt.port, mqtt.tls.*)"
        else:
            what = f"unreachable: {exc.strerror or exc}"
        self._report(
            f"{type(exc).__name__}:{what}",
            f"MQTT broker {self._where} {what}; retrying (up to every {self._m.reconnect_max_s}s)",
        )

    def _on_connect(self, client: paho.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            hint = ""
            if reason.value in (4, 5, 134, 135):  # bad user name or password / not authorized
                hint = f" (check mqtt.username {self._m.username!r} and {self._password_source()})"
            self._report(
                f"refused:{reason}",
                f"MQTT broker {self._where} refused the connection: {reason}{hint}; retrying",
            )
            return
        who = f" as {self._m.username}" if self._m.username else ""
        self._report(None, f"MQTT connected to {self._where}{who}", logging.INFO)
        if self._m.discovery:
            prefix = self._m.discovery_prefix
            client.subscribe(f"{prefix}/+/{self.node}/+/config", qos=1)
            client.subscribe(f"{prefix}/status", qos=1)
        # The broker sends a subscription's retained messages before it handles the next
        # SUBSCRIBE: this last SUBACK means every retained config of our node has arrived,
        # so a clashing device is found before we publish anything.
        client.subscribe([(f"{self.base}/visitor/name/set", 1), (f"{self.base}/visitor/ignore", 1)])
        _rc, mid = client.subscribe(f"{self.base}/enabled/set", qos=1)
        with self._cond:
            self._ready_mid = mid

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        with self._cond:
            if mid != self._ready_mid or self.failure:
                return
            self._ready_mid = None
            self._connected = True
            self._epoch += 1
            self._cond.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            # paho keeps QoS>0 messages and re-sends them; QoS 0 ones are gone.
            self._inflight = deque((i, m) for i, m in self._inflight if m.qos > 0)
            queued = sum(len(g) for g in self._queue) + len(self._current)
            self._cond.notify_all()
        if was and not self._halt:
            self.reconnects += 1
            if getattr(reason, "value", None) == 128:  # paho's code for a dropped socket
                reason = "connection closed"
            self._report(
                f"lost:{reason}",
                f"MQTT connection to {self._where} lost ({reason}); reconnecting, {queued} messages queued",
                logging.WARNING,
            )

    def _on_publish(self, *_args: Any) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        topic, payload = msg.topic, msg.payload.decode("utf-8", "replace").strip()
        if topic == f"{self.base}/enabled/set":
            self._switch(payload, bool(msg.retain))
            return
        if topic in (f"{self.base}/visitor/name/set", f"{self.base}/visitor/ignore"):
            self._visitor_command(topic, payload, bool(msg.retain))
            return
        prefix = self._m.discovery_prefix
        if topic == f"{prefix}/status":
            if payload == "online":
                with self._cond:
                    if not self._rediscover:
                        log.info("Home Assistant is online: re-sending discovery")
                        self._rediscover = True
                    self._cond.notify_all()
            return
        if topic.startswith(f"{prefix}/") and topic.endswith("/config") and payload:
            self._retained_config(topic, payload)

    def _switch(self, payload: str, retained: bool) -> None:
        """`<base>/enabled/set`: ON or OFF from a live client; a retained command is stale."""
        topic = f"{self.base}/enabled/set"
        if retained:
            log.warning(
                "MQTT: ignored the retained %s on %s (commands are not retained; clear it with "
                "mosquitto_pub -r -n -t '%s')",
                shown(payload),
                topic,
                topic,
            )
            return
        if payload.upper() not in ("ON", "OFF"):
            log.warning("MQTT: ignored %s on %s (expected ON or OFF)", shown(payload), topic)
            return
        with self._cond:
            self.enabled = payload.upper() == "ON"
            log.info("recognition %s over MQTT", "enabled" if self.enabled else "disabled")
            # Switched off, the loop forgets everyone without `left` events: nobody is watched.
            group = [] if self.enabled else self._forget_everyone()
            group.append(self._msg(f"{self.base}/enabled", payload.upper().encode()))
            self._enqueue(group, False)

    def _visitor_command(self, topic: str, payload: str, retained: bool) -> None:
        """Name (text entity) or ignore (button) the last unknown visitor; stale retained
        commands and over-long names are refused with one line."""
        naming = topic.endswith("/name/set")
        if retained:
            log.warning("MQTT: ignored the retained %s on %s (commands are not retained)", shown(payload), topic)  # fmt: skip
            return
        if naming and not 0 < len(payload) <= NAME_MAX:
            log.warning("MQTT: ignored %s on %s (a name of 1-%d characters)", shown(payload), topic, NAME_MAX)  # fmt: skip
            return
        with self._cond:
            visit = self._last_visitor
        handler = self.visitor_handler
        if visit is None or handler is None:
            why = "no unknown visitor yet" if visit is None else "unknown faces are not saved"
            log.warning("MQTT: %s on %s ignored: %s", shown(payload), topic, why)
            return
        if handler(visit, payload if naming else None):
            log.info("MQTT: %s visitor %d%s", "naming" if naming else "ignoring", visit,
                     f" as {shown(payload)}" if naming else "")  # fmt: skip
            if naming:
                with self._cond:
                    self._enqueue([self._msg(f"{self.base}/visitor/name", payload.encode())], False)

    def _retained_config(self, topic: str, payload: str) -> None:
        """A retained discovery config under our node: ours (remove it if this run does not
        publish it), another edge-faces device's with the same node (refuse to run), or
        another program's (leave it alone)."""
        try:
            cfg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(cfg, dict) or not str(cfg.get("unique_id", "")).startswith(
            f"edge_faces_{self.node}_"
        ):
            return  # not published by edge-faces: an ESPHome node of the same name, say
        device = cfg.get("device")
        owner = device.get("name") if isinstance(device, dict) else None
        if not isinstance(owner, str) or not owner.startswith("edge-faces "):
            return
        if owner == f"edge-faces {self.device_id}":  # ours, whatever the topic prefix was
            self._forget_entity(topic)
            return
        other = plain(owner.removeprefix("edge-faces "))
        with self._cond:
            if self.failure or self._connected:
                return
            self.failure = (
                f"mqtt.device_id {self.device_id!r} gives the Home Assistant node "
                f"{self.node!r}, which edge-faces device '{other}' already uses on "
                f"{self._where} ({plain(topic)}): choose another mqtt.device_id, or delete "
                f"device 'edge-faces {other}' in Home Assistant if it no longer exists"
            )
            self._cond.notify_all()

    def _person_config_topic(self, slug: str) -> str:
        return f"{self._m.discovery_prefix}/binary_sensor/{self.node}/person_{slug}/config"

    def _removal(self, topic: str) -> list[Message]:
        """Empty retained config (Home Assistant deletes the entity) and, for a person, their
        retained state topics (lock held)."""
        self._cleared.add(topic)
        object_id = topic.split("/")[-2]
        group = [self._msg(topic, b"")]
        if object_id.startswith("person_"):
            person = self._person_topic(object_id.removeprefix("person_"))
            group += [self._msg(person, b""), self._msg(f"{person}/attributes", b"")]
        log.info("MQTT: removing Home Assistant entity %s (no longer published)", plain(object_id))
        return group

    def _forget_entity(self, topic: str) -> None:
        """A retained discovery config of this device that this run does not publish."""
        with self._cond:
            if topic in self._discovery_topics or topic in self._cleared:
                return
            self._enqueue(self._removal(topic), bounded=False)
