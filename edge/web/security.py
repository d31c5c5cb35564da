"""Who may use the web app: a password beyond loopback, same-origin writes, known Host names."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from urllib.parse import urlsplit

from edge.config import Config
from edge.errors import UserError

REALM = "edge-faces"
WRITE_HEADER = "X-Edge-Request"  # set by the pages' fetch(); a cross-site form cannot set it
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def password_source(cfg: Config) -> str:
    """Where the password comes from, for messages."""
    if cfg.web.password_file:
        return f"web.password_file ({cfg.web.password_file})"
    return f"web.password_env (${cfg.web.password_env})"


class Guard:
    """Checks each request's password, origin and Host header."""

    def __init__(self, cfg: Config) -> None:
        self.password = cfg.web_password()
        self.loopback = is_loopback(cfg.web.bind)
        if not self.loopback and not self.password:
            raise UserError(
                f"{cfg.source_file}: web.bind is {cfg.web.bind}, beyond loopback, but "
                f"{password_source(cfg)} gives no password: set one, or bind 127.0.0.1"
            )

    def authorized(self, header: str | None) -> bool:
        """The Authorization header carries the password (HTTP Basic, any user name)."""
        if not self.password:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user_pass = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = user_pass.split(":", 1)[-1]
        return hmac.compare_digest(given.encode(), self.password.encode())

    def host_allowed(self, host: str | None) -> bool:
        """Without a password only loopback names may be asked for (no DNS rebinding)."""
        if self.password:
            return True
        if not host:
            return False
        name = urlsplit(f"//{host}").hostname or ""
        return is_loopback(name)

    @staticmethod
    def same_origin_write(headers: dict[str, str | None]) -> str | None:
        """Why a state-changing request is refused as possibly cross-site, or None."""
        if headers.get(WRITE_HEADER) != "1":
            return f"missing the {WRITE_HEADER}: 1 header (state changes come from the pages)"
        if headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
            return "cross-site request"
        origin, host = headers.get("Origin"), headers.get("Host")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            return f"origin {origin} is not this site"
        if origin == "null":
            return "opaque origin"
        return None
