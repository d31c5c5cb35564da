"""systemd sd_notify over $NOTIFY_SOCKET: READY, WATCHDOG, STOPPING, STATUS. No-op elsewhere."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Talks to systemd when started as a Type=notify service; silent otherwise."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._sock: socket.socket | None = None
        if self._address:
            if self._address.startswith("@"):
                self._address = "\0" + self._address[1:]
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def active(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._sock is not None

    def _send(self, message: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message, exc)

    def ready(self, status: str = "") -> None:
        """Startup finished."""
        self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        """Still alive: call from the capture loop only when frames arrive."""
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """A one-line status shown by `systemctl status`."""
        self._send(f"STATUS={text}")

    def reloading(self) -> None:
        """A reload (SIGHUP) started."""
        self._send("RELOADING=1")

    def stopping(self) -> None:
        """Shutdown started."""
        self._send("STOPPING=1")
