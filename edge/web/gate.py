"""An HTTP server that many slow clients cannot wear down: one selector thread collects each
request's header (a slow client costs a buffer, not a thread), within a deadline and a cap per
client address; only a complete request gets one of the `max_clients` worker threads."""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import HTTPServer

log = logging.getLogger(__name__)

MAX_HEADER = 64 * 1024  # a request line and headers, bytes
MAX_PENDING = 512  # connections still sending their header, from all clients together
HEADER_END = b"\r\n\r\n"


@dataclass
class _Pending:
    sock: socket.socket
    address: tuple
    deadline: float  # the whole header by then
    last: float  # when a byte last came
    data: bytearray = field(default_factory=bytearray)


class _Prefixed(io.RawIOBase):
    """The bytes already read from a socket, then the socket itself."""

    def __init__(self, prefix: bytes, raw: io.RawIOBase) -> None:
        self._prefix = memoryview(prefix)
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int | None:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _refuse(sock: socket.socket, status: str, message: str) -> None:
    """Best effort: one short JSON answer on a non-blocking socket, then close it."""
    body = f'{{"error": "{message}"}}'.encode()
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nX-Frame-Options: DENY\r\n"
        "Content-Security-Policy: default-src 'none'\r\n"
        "Cross-Origin-Resource-Policy: same-origin\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):  # the client is gone or not reading: close it anyway
        sock.setblocking(False)
        sock.send(head.encode() + body)
    sock.close()


class GatedServer(HTTPServer):
    """Serves `handler` requests: headers gathered in one thread, at most `max_clients`
    requests handled at once, at most `per_client` connections from one address waiting for
    their header, each header complete within `header_s` and silent for at most `idle_s`;
    `banned` addresses get a 429 at once."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type,
        *,
        max_clients: int,
        per_client: int,
        header_s: float,
        idle_s: float,
        exempt: Callable[[str], bool] = lambda _addr: False,
        banned: Callable[[str], bool] = lambda _addr: False,
        what: str = "web app",
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_clients)
        self._max_clients = max_clients
        self._per_client, self._header_s, self._idle_s = per_client, header_s, idle_s
        self._exempt, self._banned, self._what = exempt, banned, what
        self._new: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._pending: dict[int, _Pending] = {}
        self._waiting: Counter[str] = Counter()  # pending connections per address
        self._warned: set[str] = set()
        self._prefixes: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        super().__init__(address, handler)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._collector = threading.Thread(target=self._collect, name="web-headers", daemon=True)
        self._collector.start()

    # --- accepting -----------------------------------------------------------------------

    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        host = client_address[0]
        if self._banned(host):  # answered at once, without a thread or reading a byte
            _refuse(request, "429 Too Many Requests", "too many wrong passwords: try again later")
            return
        with self._lock:
            crowded = len(self._pending) + self._new.qsize() >= MAX_PENDING
            too_many = self._waiting[host] >= self._per_client and not self._exempt(host)
            if not (crowded or too_many):
                self._waiting[host] += 1
        if crowded or too_many:
            if host not in self._warned:  # once per address until it behaves
                self._warned.add(host)
                log.warning(
                    "%s: %s has %d connections open without a complete request; closing more",
                    self._what,
                    host,
                    self._per_client,
                )
            request.close()
            return
        now = time.monotonic()
        request.setblocking(False)
        self._new.put(_Pending(request, client_address, now + self._header_s, now))
        self._wake_w.send(b"\0")

    def _collect(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        while not self._closing.is_set():
            for key, _ in sel.select(timeout=0.25):
                if key.fileobj is self._wake_r:
                    with contextlib.suppress(BlockingIOError):  # woken by an earlier byte
                        self._wake_r.recv(4096)
                    continue
                self._read(sel, key.data)
            while True:
                try:
                    p = self._new.get_nowait()
                except queue.Empty:
                    break
                self._pending[p.sock.fileno()] = p
                sel.register(p.sock, selectors.EVENT_READ, p)
            now = time.monotonic()
            for p in list(self._pending.values()):
                if now > p.deadline or now - p.last > self._idle_s:
                    log.debug("%s: %s dropped: no complete request in time", self._what, p.address[0])  # fmt: skip
                    self._drop(sel, p)
                    p.sock.close()
        for p in list(self._pending.values()):
            self._drop(sel, p)
            p.sock.close()
        sel.close()

    def _read(self, sel: selectors.BaseSelector, p: _Pending) -> None:
        try:
            chunk = p.sock.recv(8192)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(sel, p)
            p.sock.close()
            return
        p.data += chunk
        p.last = time.monotonic()
        if HEADER_END in p.data:
            self._drop(sel, p)
            self._dispatch(p)
        elif len(p.data) > MAX_HEADER:
            self._drop(sel, p)
            _refuse(p.sock, "431 Request Header Fields Too Large", "request header over 64 KB")

    def _drop(self, sel: selectors.BaseSelector, p: _Pending) -> None:
        self._pending.pop(p.sock.fileno(), None)
        sel.unregister(p.sock)
        host = p.address[0]
        with self._lock:
            self._waiting[host] -= 1
            if self._waiting[host] <= 0:
                del self._waiting[host]
                self._warned.discard(host)

    # --- serving -------------------------------------------------------------------------

    def _dispatch(self, p: _Pending) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("%s: %d requests in progress, answering 503", self._what, self._max_clients)
            _refuse(p.sock, "503 Service Unavailable", "busy: try again in a moment")
            return
        p.sock.setblocking(True)
        with self._lock:
            self._prefixes[id(p.sock)] = bytes(p.data)
        threading.Thread(target=self._serve, args=(p.sock, p.address), daemon=True).start()

    def _serve(self, sock: socket.socket, address: tuple) -> None:
        try:
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            with self._lock:
                self._prefixes.pop(id(sock), None)
            self.shutdown_request(sock)
            self._slots.release()

    def reader(self, sock: socket.socket) -> io.BufferedReader:
        """The request's input: the header gathered here, then the socket."""
        with self._lock:
            prefix = self._prefixes.pop(id(sock), b"")
        return io.BufferedReader(_Prefixed(prefix, socket.SocketIO(sock, "rb")))

    def server_close(self) -> None:
        self._closing.set()
        self._wake_w.send(b"\0")
        self._collector.join(timeout=5)
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()
