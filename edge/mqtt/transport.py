"""MQTT transport over paho-mqtt 2.x: connect, reconnect with backoff, TLS, user/password,
birth and last will, a bounded queue published in order by one worker, drain on close.

It only publishes and subscribes; what the messages mean is decided by its callers.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from edge.config import Config
from edge.errors import UserError
from edge.mqtt.messages import Message, log
from edge.slugs import slugify

WINDOW = 20  # messages handed to paho and not yet acknowledged by the broker
FLUSH_TIMEOUT_S = 5.0  # close() waits this long for the queue to drain
RECONNECT_MIN_S = 1
REDISCOVER_MIN_S = 10.0  # Home Assistant `online` floods: at most one re-announcement per this


def client_id(device_id: str) -> str:
    """MQTT client id: edge-faces-<node>, plus a hash of the raw id when slugging changed it,
    so "Front Door" and "front-door" never knock each other off the broker."""
    node = slugify(device_id)
    if node == device_id:
        return f"edge-faces-{node}"
    return f"edge-faces-{node}-{hashlib.sha256(device_id.encode()).hexdigest()[:8]}"


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


class Transport:
    """Publishes queued message groups in order once the broker is up; paho's network thread
    reconnects with backoff. Each (re)connection starts with `online`, then `announce()`
    (discovery), then the retained state published so far."""

    def __init__(
        self,
        cfg: Config,
        base: str,
        device_id: str,
        subscriptions: list[tuple[str, int]],
        on_message: Callable[[Any, Any, paho.MQTTMessage], None],
        announce: Callable[[], list[Message]],
    ) -> None:
        self.m = m = cfg.mqtt
        self.base = base
        self.qos = m.qos
        self.where = f"{m.host}:{m.port}"
        self.dropped = 0
        self.reconnects = 0
        self.failure: str | None = None  # a reason to stop (a clashing device id)
        # Subscribed in order on every connection; the last SUBACK means every retained
        # message of the earlier ones has arrived (the broker sends them before it handles
        # the next SUBSCRIBE), so a clash is found before we publish anything.
        self.subscriptions = subscriptions
        self._announce = announce
        self._cond = threading.Condition()
        self._queue: deque[list[Message]] = deque()
        self._current: deque[Message] = deque()  # worker: the group being sent
        self._inflight: deque[tuple[paho.MQTTMessageInfo, Message]] = deque()
        self._stats_msg: Message | None = None
        self._published_retained: dict[str, Message] = {}  # worker: what the broker should hold
        self._connected = False
        self._epoch = 0
        self._rediscover = False
        self._rediscover_at = 0.0  # monotonic time before which a re-announcement waits
        self._ready_mid: int | None = None  # SUBACK that ends the retained-config check
        self._halt = False
        self._started = False
        self._problem: str | None = None
        self._worker: threading.Thread | None = None
        self._client = self._make_client(cfg, device_id, on_message)

    # --- setup -----------------------------------------------------------------------------
    def _make_client(self, cfg: Config, device_id: str, on_message: Callable) -> _Client:
        m = self.m
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id(device_id),
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
        client.on_message = on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_connect_error = self._on_connect_error
        return client

    def msg(self, topic: str, payload: bytes, retain: bool = True) -> Message:
        """A message at the configured QoS."""
        return Message(topic, payload, retain, self.qos)

    @property
    def started(self) -> bool:
        return self._started

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self, first: list[Message]) -> None:
        """Queue `first` ahead of anything queued, connect in the background."""
        with self._cond:
            self._queue.appendleft(first)
            self._started = True
        self._worker = threading.Thread(target=self._run, name="mqtt-publish", daemon=True)
        self._worker.start()
        self._client.connect_async(self.m.host, self.m.port, self.m.keepalive_s)
        self._client.loop_start()

    def enqueue(self, group: list[Message], bounded: bool = True) -> None:
        """Append one group. Beyond the bound the oldest group's event is dropped; its
        retained states are folded into the next group so presence stays right."""
        if not group:  # the worker takes a group as the next one to send: never an empty one
            return
        with self._cond:
            if bounded and len(self._queue) >= self.m.queue_size:
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

    def latest(self, msg: Message) -> None:
        """Send `msg` when the queue is empty, replacing one not yet sent (stats)."""
        with self._cond:
            self._stats_msg = msg
            self._cond.notify_all()

    def announce_now(self) -> None:
        """Re-send the announcement at once (a new model)."""
        with self._cond:
            self._rediscover, self._rediscover_at = True, 0.0
            self._cond.notify_all()

    def rediscover(self) -> None:
        """Re-send the announcement, at most once per REDISCOVER_MIN_S (Home Assistant online)."""
        with self._cond:
            if not self._rediscover:
                log.info("Home Assistant is online: re-sending discovery")
                self._rediscover = True
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        """Stop before anything is published (a clash found by the retained-config check)."""
        with self._cond:
            if self.failure or self._connected:
                return
            self.failure = reason
            self._cond.notify_all()

    def counters(self) -> dict[str, Any]:
        """Connection and queue counters, for stats."""
        with self._cond:
            return {
                "queued": len(self._queue),  # events (with their state messages)
                "dropped": self.dropped,
                "reconnects": self.reconnects,
            }

    def close(self, last: list[Message]) -> None:
        """Queue `last`; wait up to FLUSH_TIMEOUT_S for the queue to drain; disconnect."""
        self.enqueue(last, bounded=False)
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
                "MQTT: %d messages not delivered to %s (broker unreachable)", left, self.where
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
        msgs = [self.msg(f"{self.base}/status", b"online")]
        msgs += self._announce()
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
            if msg.retain and not msg.topic.startswith(f"{self.m.discovery_prefix}/"):
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
        if self.m.password_file:
            return f"the password in {self.m.password_file}"
        return f"the password in ${self.m.password_env}" if self.m.password_env else "no password"

    def _on_connect_error(self, exc: OSError) -> None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            what = f"TLS certificate check failed: {exc.verify_message} (check mqtt.tls.ca_file {self.m.tls.ca_file} and that mqtt.host matches the certificate)"
        elif isinstance(exc, ssl.SSLError):
            what = f"TLS handshake failed: {exc.reason or exc} (check mqtt.port, mqtt.tls.*)"
        else:
            what = f"unreachable: {exc.strerror or exc}"
        self._report(
            f"{type(exc).__name__}:{what}",
            f"MQTT broker {self.where} {what}; retrying (up to every {self.m.reconnect_max_s}s)",
        )

    def _on_connect(self, client: paho.Client, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            hint = ""
            if reason.value in (4, 5, 134, 135):  # bad user name or password / not authorized
                hint = f" (check mqtt.username {self.m.username!r} and {self._password_source()})"
            self._report(
                f"refused:{reason}",
                f"MQTT broker {self.where} refused the connection: {reason}{hint}; retrying",
            )
            return
        who = f" as {self.m.username}" if self.m.username else ""
        self._report(None, f"MQTT connected to {self.where}{who}", logging.INFO)
        mid = None
        for topic, qos in self.subscriptions:
            _rc, mid = client.subscribe(topic, qos=qos)
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
                f"MQTT connection to {self.where} lost ({reason}); reconnecting, {queued} messages queued",
                logging.WARNING,
            )

    def _on_publish(self, *_args: Any) -> None:
        with self._cond:
            self._cond.notify_all()
