"""A real Mosquitto for tests: free loopback port, optional password and TLS, restartable.

Also a recording subscriber. Used by the MQTT, Home Assistant and process-level tests.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str = "ca") -> tuple[Path, Path]:
    """A self-signed EC CA: (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=folder)
    _openssl(
        "req", "-x509", "-new", "-key", key.name, "-sha256", "-days", "2",
        "-subj", f"/CN=edge-faces test {name}", "-out", cert.name, cwd=folder,
    )  # fmt: skip
    return cert, key


def make_cert(folder: Path, ca: tuple[Path, Path], name: str, server: bool) -> tuple[Path, Path]:
    """A certificate signed by `ca`: server (SAN 127.0.0.1, localhost) or client. (cert, key)."""
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    ext = folder / f"{name}.ext"
    if server:
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    else:
        ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key.name, cwd=folder)
    _openssl("req", "-new", "-key", key.name, "-subj", f"/CN={name}", "-out", csr.name, cwd=folder)
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext.name, "-out", cert.name,
        cwd=folder,
    )  # fmt: skip
    return cert, key


@dataclass
class Tls:
    """Files for a TLS listener and its clients."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that did not sign the server certificate
    other_ca_key: Path

    @classmethod
    def create(cls, folder: Path) -> Tls:
        """Generate a CA, a server and a client certificate, and an unrelated CA, with openssl."""
        ca = make_ca(folder, "ca")
        server = make_cert(folder, ca, "server", server=True)
        client = make_cert(folder, ca, "client", server=False)
        other = make_ca(folder, "other-ca")
        return cls(ca[0], server[0], server[1], client[0], client[1], other[0], other[1])


class Broker:
    """Mosquitto on a free loopback port; keeps its port and (persisted) state across restarts."""

    def __init__(
        self,
        folder: Path,
        users: dict[str, str] | None = None,
        tls: Tls | None = None,
        require_client_cert: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.log = self.folder / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence true",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # else mosquitto drops to 'mosquitto'
        if users:
            pw = self.folder / "passwd"
            pw.write_text("")
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(pw), user, password],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {pw}")
        if tls:
            lines += [
                f"cafile {tls.ca}",
                f"certfile {tls.server_cert}",
                f"keyfile {tls.server_key}",
            ]
            if require_client_cert:
                lines.append("require_certificate true")
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def set_password(self, user: str, password: str) -> None:
        """Change a user's password and make a running broker reload it (SIGHUP)."""
        subprocess.run(
            ["mosquitto_passwd", "-b", str(self.folder / "passwd"), user, password],
            check=True,
            capture_output=True,
        )
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)

    def use_server_cert(self, cert: Path, key: Path) -> None:
        """Serve another certificate from the next start on."""
        text = self.conf.read_text()
        assert self.tls is not None
        text = text.replace(f"certfile {self.tls.server_cert}", f"certfile {cert}")
        text = text.replace(f"keyfile {self.tls.server_key}", f"keyfile {key}")
        self.conf.write_text(text)

    def start(self, timeout: float = 10.0) -> Broker:
        """Start mosquitto and wait until it accepts TCP connections."""
        assert self.proc is None, "already running"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited {self.proc.returncode}: {self.log.read_text()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    time: float

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


class Recorder:
    """A subscriber that records every message (with its retain flag) across broker restarts.

    A persistent session (clean_session False, QoS 1) so messages published while it
    is reconnecting are kept for it by the broker.
    """

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        persistent: bool = True,
        ca: Path | None = None,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self.connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"recorder-{id(self)}",
            clean_session=not persistent,
        )
        if username:
            self.client.username_pw_set(username, password)
        if broker.tls:
            self.client.tls_set(
                ca_certs=str(ca or broker.tls.ca),
                certfile=str(broker.tls.client_cert),
                keyfile=str(broker.tls.client_key),
            )
        self.client.reconnect_delay_set(0.2, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_message = self._on_message

    def _on_connect(self, client, _u, _f, reason, _p) -> None:
        if reason.is_failure:
            return
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_message(self, _c, _u, msg) -> None:
        with self._cond:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time())
            )
            self._cond.notify_all()

    def start(self, timeout: float = 10.0) -> Recorder:
        self.client.connect_async(self.broker.host, self.broker.port, 30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise RuntimeError("recorder could not connect")
        time.sleep(0.2)  # let SUBACKs and retained messages arrive
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def on(self, topic: str) -> list[Received]:
        """Messages received on `topic`, in order."""
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until pred() (evaluated on each new message) is true; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def wait_payload(self, topic: str, payload: bytes | str, timeout: float = 10.0) -> bool:
        """Wait until the latest message on `topic` is `payload`."""
        want = payload.encode() if isinstance(payload, str) else payload
        return self.wait_for(
            lambda: (
                any(m.topic == topic for m in self.messages)
                and [m for m in self.messages if m.topic == topic][-1].payload == want
            ),
            timeout,
        )


def retained(broker: Broker, topic: str, timeout: float = 1.0, **login: str) -> dict[str, bytes]:
    """The retained messages the broker holds under `topic` (wildcards allowed), by topic.

    `login`: username= and password= for a password-protected broker."""
    rec = Recorder(
        broker, [topic], client_id=f"peek-{time.monotonic_ns()}", persistent=False, **login
    )
    with rec:
        time.sleep(timeout)
        return {m.topic: m.payload for m in rec.messages if m.retain}
