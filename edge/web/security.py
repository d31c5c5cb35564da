"""Who may use the web app: a password beyond loopback, same-origin writes, known Host names,
and who the client is behind a trusted reverse proxy."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import os
import stat
from urllib.parse import urlsplit

from edge.config import Config, ConfigError
from edge.errors import UserError

log = logging.getLogger(__name__)

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


def trusted_networks(cfg: Config) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """web.trusted_proxies as networks; UserError naming the bad entry."""
    out = []
    for item in (p.strip() for p in cfg.web.trusted_proxies.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise UserError(
                f"{cfg.source_file}: web.trusted_proxies: {item!r} is not an IP address or network"
            ) from None
    return out


def warn_if_readable(cfg: Config) -> None:
    """A WARNING when the password file can be read by every user of the machine."""
    path = cfg.web.password_file
    if not path:
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # reading it reports the problem
    if mode & stat.S_IROTH:
        log.warning(
            "web.password_file %s is readable by every user (mode %o): chmod 600 it",
            path, stat.S_IMODE(mode),
        )  # fmt: skip


class Guard:
    """Checks each request's password, origin and Host header."""

    def __init__(self, cfg: Config) -> None:
        self.password = ""
        self.proxies: list = []
        self._load(cfg)

    def _load(self, cfg: Config) -> None:
        password = cfg.web_password()
        if not is_loopback(cfg.web.bind) and not password:
            raise UserError(
                f"{cfg.source_file}: web.bind is {cfg.web.bind}, beyond loopback, but "
                f"{password_source(cfg)} gives no password: set one, or bind 127.0.0.1"
            )
        self.proxies = trusted_networks(cfg)
        warn_if_readable(cfg)
        self.password = password

    def reload(self, cfg: Config) -> None:
        """Re-read the password and the trusted proxies (SIGHUP); keep the old ones on error."""
        try:
            self._load(cfg)
        except (UserError, ConfigError) as exc:
            log.error("web: keeping the old password: %s", exc)
        else:
            log.info("web: password re-read from %s", password_source(cfg))

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer, or the last hop a trusted proxy names."""
        if forwarded_for and self.is_proxy(peer):
            hop = forwarded_for.split(",")[-1].strip()
            if hop:
                return hop
        return peer

    def site(self, peer: str, host: str | None, forwarded_host: str | None) -> str | None:
        """The Host the browser asked for: X-Forwarded-Host from a trusted proxy, else Host."""
        if forwarded_host and self.is_proxy(peer):
            return forwarded_host.split(",")[0].strip()
        return host

    def is_proxy(self, peer: str) -> bool:
        """True when `peer` is one of web.trusted_proxies."""
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(addr in net for net in self.proxies)

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
