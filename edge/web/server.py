"""The web app's HTTP server: routes pages and the JSON API (docs/web.md) to the feed and the
library. Python's ThreadingHTTPServer, capped in connections, with socket timeouts."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from edge.config import Config
from edge.errors import UserError
from edge.history import HistoryReader, day_range
from edge.preview import CappedServer, send_snapshot, send_stream
from edge.web import pages
from edge.web.feed import Feed
from edge.web.library import Library
from edge.web.security import REALM, Guard

log = logging.getLogger(__name__)

LIVE_FPS = 10.0  # the Live page's stream: plenty on a phone, and each frame costs a JPEG encode
EVENTS_PAGE = 100  # events per page of the Events page
MAX_JSON = 64 * 1024  # body of a JSON request
FAILED_AUTH_DELAY_S = 0.5  # slows password guessing (each guess holds one capped slot)
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".bmp": "image/bmp"}  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
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
        self.feed = feed or Feed()
        self.events: HistoryReader | Feed = self.feed
        self.read_history(cfg)
        self.library = Library(cfg)
        handler = _handler_for(self, cfg.web.timeout_s)
        bind, port = cfg.web.bind, cfg.web.port
        try:
            self._server = CappedServer((bind, port), handler, cfg.web.max_clients, "web app")
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

    def read_history(self, cfg: Config) -> None:
        """The Events page reads the history the loop writes; without one, the feed's memory."""
        self.events = HistoryReader(cfg.history.path) if cfg.history.enabled else self.feed

    def close(self) -> None:
        """Stop serving; live streams end."""
        self.feed.close()
        self._server.shutdown()
        self._server.server_close()


def _int(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise HttpError(404, f"no such {what}: {text}")
    return int(text)


def _event_filters(query: dict[str, str]) -> dict[str, Any]:
    """person, day, camera and before (paging) from a query string; 400 when malformed."""
    before = query.get("before", "")
    if before and (not before.isdigit() or len(before) > 12):
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
    feed, library, guard = app.feed, app.library, app.guard
    max_upload = int(app.cfg.web.max_upload_mb * 1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # every read and write of a connection
        server_version = "edge-faces"
        sys_version = ""

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("web %s: " + fmt, self.client_address[0], *args)

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
            try:
                if not guard.host_allowed(self.headers.get("Host")):
                    raise HttpError(421, "this server answers to its loopback address only")
                if not guard.authorized(self.headers.get("Authorization")):
                    if self.headers.get("Authorization"):
                        time.sleep(FAILED_AUTH_DELAY_S)
                    self._unauthorized()
                    return
                if method != "GET":
                    refused = guard.same_origin_write(dict(self.headers.items()))
                    if refused:
                        raise HttpError(403, refused)
                self._route(method, parts, query)
            except HttpError as exc:
                self._error(exc.status, str(exc))
            except UserError as exc:
                self._error(400, str(exc))
            except FileNotFoundError as exc:
                self._error(404, f"not found: {exc.args[0] if exc.args else url.path}")
            except OSError:
                pass  # the client went away or timed out
            except Exception:
                log.exception("web %s %s failed", method, url.path)
                self._error(500, "internal error (see the log)")

        def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (SECURITY_HEADERS | (extra or {})).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _html(self, text: str) -> None:
            self._send(200, text.encode(), "text/html; charset=utf-8")

        def _error(self, status: int, message: str) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
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
            if length is None or not length.isdigit():
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

        def _name_field(self) -> str:
            name = self._json_body().get("name")
            if not isinstance(name, str) or not name.strip():
                raise HttpError(400, 'the body needs {"name": "..."}')
            return name

        # --- routes -----------------------------------------------------------------------

        def _route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            match (method, *parts):
                case ("GET",):
                    self._html(pages.live())
                case ("GET", "events"):
                    filters = _event_filters(query)
                    found = app.events.events(EVENTS_PAGE, **filters)
                    names = library.model_labels()
                    self._html(
                        pages.events(found, filters, names, app.events.cameras(), EVENTS_PAGE)
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
                    send_stream(self, feed.frames, LIVE_FPS)
                case ("GET", "snapshot.jpg"):
                    send_snapshot(self, feed.frames)
                case (_, "api", *rest):
                    self._api(method, rest, query)
                case _:
                    raise HttpError(404 if method == "GET" else 405, f"no {method} {self.path}")

        def _api(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            match (method, *parts):
                case ("GET", "events"):
                    limit = query.get("limit", "50")
                    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
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
                case ("GET", "visitors"):
                    self._json(library.visitors())
                case ("GET", "visitors", vid, "crops", image):
                    self._file(library.crop_path(_int(vid, "visitor"), image))
                case ("POST", "visitors", vid, "name"):
                    name = self._name_field()
                    self._json(library.name_visitor(_int(vid, "visitor"), name))
                case ("POST", "visitors", vid, "ignore"):
                    self._json(library.name_visitor(_int(vid, "visitor"), None))
                case ("DELETE", "visitors", vid):
                    self._json(library.delete_visitor(_int(vid, "visitor")))
                case ("GET", "people"):
                    self._json(library.people())
                case ("GET", "people", name, "photos", file):
                    self._file(library.photo_path(name, file))
                case ("POST", "people", name, "photos"):
                    data = self._body(max_upload)
                    filename = unquote(self.headers.get("X-Filename", ""))
                    self._json(library.add_photo(name, filename, data))
                case ("DELETE", "people", name, "photos", file):
                    self._json(library.remove_photo(name, file))
                case ("POST", "people", name, "rename"):
                    self._json(library.rename(name, self._name_field()))
                case ("POST", "people", name, "forget"):
                    self._json(library.forget(name))
                case _:
                    raise HttpError(
                        404 if method == "GET" else 405, f"no {method} /api/{'/'.join(parts)}"
                    )

    return Handler
