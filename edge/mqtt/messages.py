"""What every part of the MQTT output shares: the Message, payload encoding, safe logging."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.errors import UserError

log = logging.getLogger("edge.mqtt")  # one logger for the whole MQTT output

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


def to_json(obj: Any) -> bytes:
    """Compact JSON; numpy scalars and arrays as plain numbers and lists."""

    def convert(value: Any) -> Any:
        if hasattr(value, "item"):  # numpy scalars
            return value.item()
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    return json.dumps(obj, default=convert, separators=(",", ":")).encode()


def iso(unix_time: float | None) -> str:
    """ISO 8601 UTC time of `unix_time` (now when None), to the second."""
    t = time.time() if unix_time is None else float(unix_time)
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def check_topic_part(value: str, key: str, source: str) -> None:
    """UserError naming `key` when `value` cannot be part of an MQTT topic."""
    if not value or any(c in value for c in "+#\0") or value.startswith("/") or "//" in value:
        raise UserError(f"{source}: {key}: {value!r} is not usable in an MQTT topic")


def person_topic(base: str, slug: str) -> str:
    """A person's presence state topic."""
    return f"{base}/person/{slug}"
