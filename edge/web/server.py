"""The web app's HTTP server: routes pages and the JSON API (docs/web.md) to the feed and the
library. Headers are gathered by edge.web.gate (slow clients cost no thread); every answer,
errors included, is JSON or a page with the security headers and a log line."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from edge.config import Config
from edge.errors import DISK_ERRORS, UserError
from edge.history import HistoryReader, day_range
from edge.preview import LatestFrame, send_snapshot, send_stream
from edge.web import pages
from edge.web.feed import Feed
from edge.web.gate import GatedServer
from edge.web.library import Library
from edge.web.logins import Logins
from edge.web.security import REALM, Guard

log = logging.getLogger(__name__)
T = TypeVar("T")

LIVE_FPS = 10.0  # the Live page's stream: plenty on a phone, and each frame costs a JPEG encode
EVENTS_PAGE = 100  # events per page of the Events page
MAX_JSON = 64 * 1024  # body of a JSON request
WORKER_NICE = 10  # library changes (decoding, enrolment) run behind the capture loop
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp"}  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",  # no other site may embed crops or the stream
}


class HttpError(Exception):
    """An answer other than 200: status and one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class WebApp:
    """Serves the pages and the API at http://bind:port/ until close()."""

    def __init__(self, cfg: Config, feed: Feed | None = None) -> None:
        self.cfg = cfg
        self.guard = Guard(cfg)
        self.logins = Logins()
        self.feed = feed or Feed()
        self.events: HistoryReader | Feed = self.feed
        self.read_history(cfg)
        self.library = Library(cfg)
        self._worker = ThreadPoolExecutor(1, "web-library", initializer=_behind_the_loop)
        handler = _handler_for(self, cfg.web.timeout_s)
        bind, port = cfg.web.bind, cfg.web.port
        try:
            self._server = GatedServer(
                (bind, port),
                handler,
                max_clients=cfg.web.max_clients,
                per_client=cfg.web.max_per_client,
                header_s=cfg.web.header_timeout_s,
                idle_s=cfg.web.timeout_s,
                exempt=self.guard.is_proxy,
                banned=lambda host: (
                    not self.guard.is_proxy(host) and self.logins.banned_for(host) > 0
                ),
            )
        except OSError as exc:
            raise UserError(
                f"{cfg.source_file}: web.port: cannot serve on {bind}:{port}: {exc.strerror or exc}"
            ) from None
        self.bind, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="web",
            daemon=True,
        )
        self._thread.start()
        log.info("web app at http://%s:%d/", self.bind, self.port)

    def work(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a library change on the one worker thread and wait for it: changes happen one
        at a time, and their big buffers (decoded photos) stay in one thread's memory arena
        instead of one per request thread (eight parallel uploads measured +420 MB before)."""
        return self._worker.submit(fn, *args).result()

    def reload(self, cfg: Config) -> None:
        """A new config (SIGHUP): paths and the model, the password, the trusted proxies and
        the history; the server keeps its port."""
        self.cfg = cfg
        self.library.cfg = cfg
        self.guard.reload(cfg)
        self.read_history(cfg)

    def read_history(self, cfg: Config) -> None:
        """The Events page reads the history the loop writes; without one, the feed's memory."""
        self.events = HistoryReader(cfg.history.path) if cfg.history.enabled else self.feed

    def close(self) -> None:
        """Stop serving; live streams end."""
        self.feed.close()
        self._server.shutdown()
        self._server.server_close()
        self._worker.shutdown(wait=False, cancel_futures=True)


def _behind_the_loop() -> None:
    """The calling thread yields the CPU to the capture loop (Linux: a thread's own nice)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
    except (OSError, AttributeError) as exc:
        log.debug("web: library changes at normal priority (%s)", exc)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit() is True, and int("²") fails


def _int(text: str, what: str) -> int:
    if not _digits(text) or len(text) > 9:
        raise HttpError(404, f"no such {what}: {text}")
    return int(text)


def _person(name: str) -> str:
    """A person's name from a URL or a body: at most pages.MAX_NAME characters."""
    if len(name.strip()) > pages.MAX_NAME:
        raise HttpError(
            400, f"a name has at most {pages.MAX_NAME} characters ({len(name.strip())} given)"
        )
    return name


def _os_error(exc: OSError) -> HttpError:
    """A failed file operation as an answer: a full disk is 507, a too-long name 400."""
    if exc.errno in DISK_ERRORS:
        return HttpError(
            507, f"{DISK_ERRORS[exc.errno]}: nothing was saved (free some space on the device)"
        )
    if exc.errno == errno.ENAMETOOLONG:
        return HttpError(400, "a name too long for the disk")
    return HttpError(500, f"a file operation failed: {exc.strerror or exc}")


def _event_filters(query: dict[str, str]) -> dict[str, Any]:
    """person, day, camera and before (paging) from a query string; 400 when malformed."""
    before = query.get("before", "")
    if before and (not _digits(before) or len(before) > 12):
        raise HttpError(400, "before must be an event id")
    day = query.get("day", "")
    if day:
        day_range(day)  # UserError (400) when not YYYY-MM-DD
    return {
        "person": query.get("person") or None,
        "day": day or None,
        "camera": query.get("camera") or None,
        "before": int(before) if before else None,
    }


def _handler_for(app: WebApp, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    feed, library, guard, logins = app.feed, app.library, app.guard, app.logins
    max_upload = int(app.cfg.web.max_upload_mb * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # every read and write of a connection
        server_version = "edge-faces"
        sys_version = ""

        client = ""  # the client's address (behind a trusted proxy: the one it names)

        def setup(self) -> None:
            super().setup()
            self.rfile.close()
            self.rfile = self.server.reader(self.connection)  # type: ignore[attr-defined]
            self.client = self.client_address[0]

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("web %s: " + fmt, self.client, *args)

        def send_response(self, code: int, message: str | None = None) -> None:
            super().send_response(code, message)
            for k, v in SECURITY_HEADERS.items():  # every answer: pages, streams, errors
                self.send_header(k, v)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """The standard library's own errors (bad request line, unknown method) as JSON."""
            self.request_version = "HTTP/1.0"  # an unparsed line leaves HTTP/0.9: no headers
            self._error(code, message or self.responses.get(code, ("error",))[0])

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        # --- plumbing ---------------------------------------------------------------------

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")] if url.path.strip("/") else []  # fmt: skip
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            peer = self.client_address[0]
            self.client = guard.client(peer, self.headers.get("X-Forwarded-For"))
            try:
                banned = logins.banned_for(self.client)
                if banned:
                    raise HttpError(429, f"too many wrong passwords: try again in {int(banned // 60) + 1} min")  # fmt: skip
                site = guard.site(peer, self.headers.get("Host"), self.headers.get("X-Forwarded-Host"))  # fmt: skip
                if not guard.host_allowed(site):
                    raise HttpError(421, "this server answers to its loopback address only")
                auth = self.headers.get("Authorization")
                if not guard.authorized(auth):
                    if auth:
                        time.sleep(logins.failed(self.client))
                    self._unauthorized()
                    return
                if auth:
                    logins.succeeded(self.client)
                if method != "GET":
                    refused = guard.same_origin_write(dict(self.headers.items()) | {"Host": site})
                    if refused:
                        raise HttpError(403, refused)
                self._route(method, parts, query)
            except HttpError as exc:
                self._error(exc.status, str(exc))
            except UserError as exc:
                self._error(400, str(exc))
            except FileNotFoundError as exc:
                self._error(404, f"not found: {exc.args[0] if exc.args else url.path}")
            except (ConnectionError, TimeoutError) as exc:
                log.debug("web %s %s %s: the client went away (%s)", self.client, method, url.path, exc)  # fmt: skip
            except OSError as exc:
                err = _os_error(exc)
                log.error("web %s %s %s: %s", self.client, method, url.path, exc)
                self._error(err.status, str(err), logged=True)
            except Exception:
                log.exception("web %s %s failed", method, url.path)
                self._error(500, "internal error (see the log)", logged=True)

        def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in ({"Cache-Control": "no-store"} | (extra or {})).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _html(self, text: str) -> None:
            self._send(200, text.encode(), "text/html; charset=utf-8")

        def _error(self, status: int, message: str, logged: bool = False) -> None:
            self.close_connection = True
            if not logged:
                level = logging.ERROR if status >= 500 else logging.INFO
                log.log(level, "web %s %s %s: %d %s", self.client, self.command, getattr(self, "path", "-"), status, message)  # fmt: skip
            with contextlib.suppress(OSError):  # the client went away: nothing left to tell it
                self._json({"error": message}, status)

        def _unauthorized(self) -> None:
            self.close_connection = True
            self._send(
                401, b'{"error": "password required"}', "application/json",
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )  # fmt: skip

        def _file(self, path: Path) -> None:
            self._send(200, path.read_bytes(), IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream"))  # fmt: skip

        def _body(self, limit: int) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not _digits(length):
                raise HttpError(411, "a Content-Length is required")
            if int(length) > limit:
                raise HttpError(413, f"larger than {limit // 1024} KB")
            data = self.rfile.read(int(length))
            if len(data) != int(length):
                raise HttpError(400, "the body ended early")
            return data

        def _json_body(self) -> dict[str, Any]:
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                raise HttpError(415, "send application/json")
            try:
                obj = json.loads(self._body(MAX_JSON) or b"{}")
            except ValueError:
                raise HttpError(400, "the body is not JSON") from None
            if not isinstance(obj, dict):
                raise HttpError(400, "the body must be a JSON object")
            return obj

        def _name_of(self, body: dict) -> str:
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise HttpError(400, 'the body needs {"name": "..."}')
            return _person(name)

        def _camera_frames(self, query: dict[str, str]) -> LatestFrame:
            """The Live view ?camera= names (the only one without); 404 for no such camera."""
            frames = feed.frames_of(query.get("camera"))
            if frames is None:
                raise HttpError(404, f"no camera {query.get('camera')!r}")
            return frames

        # --- routes -----------------------------------------------------------------------

        def _route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            match (method, *parts):
                case ("GET",):
                    self._html(pages.live(list(feed.camera_frames)))
                case ("GET", "events"):
                    filters = _event_filters(query)
                    found = app.events.events(EVENTS_PAGE, **filters)
                    names = library.model_labels()
                    ids = {v["id"] for v in library.visitors()}
                    self._html(
                        pages.events(found, filters, names, app.events.cameras(), EVENTS_PAGE, ids)
                    )
                case ("GET", "visitors"):
                    self._html(pages.visitors(library.visitors(), library.model_labels()))
                case ("GET", "people"):
                    self._html(pages.people(library.people()))
                case ("GET", "status"):
                    self._html(pages.status(feed.current()))
                case ("GET", "static", name) if name in STATIC:
                    data = resources.files("edge.web").joinpath("static", name).read_bytes()
                    self._send(200, data, STATIC[name])
                case ("GET", "live.mjpeg"):
                    send_stream(self, self._camera_frames(query), LIVE_FPS)
                case ("GET", "snapshot.jpg"):
                    send_snapshot(self, self._camera_frames(query))
                case (_, "api", *rest):
                    self._api(method, rest, query)
                case _:
                    raise HttpError(404 if method == "GET" else 405, f"no {method} {self.path}")

        def _api(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            match (method, *parts):
                case ("GET", "events"):
                    limit = query.get("limit", "50")
                    if not _digits(limit) or not 1 <= int(limit) <= 1000:
                        raise HttpError(400, "limit must be 1..1000")
                    self._json(app.events.events(int(limit), **_event_filters(query)))
                case ("GET", "events", eid, "snapshot.jpg"):
                    data = app.events.snapshot(_int(eid, "event"))
                    if data is None:
                        raise HttpError(404, f"no snapshot for event {eid}")
                    self._send(200, data, "image/jpeg")
                case ("GET", "events", eid, "frame.jpg") if app.events is not feed:
                    data = app.events.frame(_int(eid, "event"))
                    if data is None:
                        raise HttpError(404, f"no frame kept for event {eid} (history.full_frame)")
                    self._send(200, data, "image/jpeg")
                case ("GET", "status"):
                    self._json(feed.current())
                case ("GET", "changes"):
                    self._json({"events": feed.news, "status": int(time.time())} | library.stamp())
                case ("GET", "visitors"):
                    self._json(library.visitors())
                case ("GET", "visitors", vid, "crops", image):
                    self._file(library.crop_path(_int(vid, "visitor"), image))
                case ("POST", "visitors", vid, "name"):
                    body = self._json_body()
                    name, force = self._name_of(body), body.get("force") is True
                    together = body.get("together") is True  # every visit of this stranger
                    self._json(app.work(library.name_visitor, _int(vid, "visitor"), name, force, together))  # fmt: skip
                case ("POST", "visitors", vid, "ignore"):
                    sent = self.headers.get("Content-Type", "").startswith("application/json")
                    together = sent and self._json_body().get("together") is True
                    self._json(app.work(library.name_visitor, _int(vid, "visitor"), None, False, together))  # fmt: skip
                case ("POST", "events", eid, "correct"):
                    body = self._json_body()
                    event = _int(eid, "event")
                    crop = app.events.snapshot(event)
                    if crop is None:
                        raise HttpError(404, f"no face kept for event {eid}")
                    name = None if body.get("name") is None else self._name_of(body)
                    force = body.get("force") is True
                    self._json(app.work(library.correct_event, crop, event, name, force))
                case ("DELETE", "visitors", vid):
                    self._json(app.work(library.delete_visitor, _int(vid, "visitor")))
                case ("GET", "people"):
                    self._json(library.people())
                case ("GET", "people", name, "photos", file):
                    self._file(library.photo_path(name, file))
                case ("POST", "people", name, "photos"):
                    _person(name)
                    data = self._body(max_upload)
                    filename = unquote(self.headers.get("X-Filename", ""))
                    force = self.headers.get("X-Force") == "1"  # the second click: "Add anyway"
                    self._json(app.work(library.add_photo, name, filename, data, force))
                case ("DELETE", "people", name, "photos", file):
                    self._json(app.work(library.remove_photo, name, file))
                case ("POST", "people", name, "rename"):
                    body = self._json_body()
                    merge = body.get("merge") is True
                    self._json(app.work(library.rename, name, self._name_of(body), merge))
                case ("POST", "people", name, "forget"):
                    self._json(app.work(library.forget, name))
                case _:
                    raise HttpError(
                        404 if method == "GET" else 405, f"no {method} /api/{'/'.join(parts)}"
                    )

    return Handler
