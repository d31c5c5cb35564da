"""Commands from Home Assistant: the recognition switch, naming and ignoring the last visitor.

Commands are never retained: a retained one was left by some client long ago and is refused.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

from edge.mqtt.discovery import NAME_MAX, STATE_MAX
from edge.mqtt.messages import log, shown
from edge.mqtt.presence import Presence
from edge.mqtt.transport import Transport

CHANGED_S = 10.0  # a name without a visit id is refused this soon after the visitor changed
FORM = '{"visit": N, "name": "..."}'


def parse_name(raw: bytes) -> tuple[int | None, str] | str:
    """(visit id or None, name) from a name_visitor payload: a plain name or the JSON
    {"visit": N, "name": "..."}; else the reason it is refused."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "not UTF-8 text"
    visit = None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        ok = isinstance(obj, dict) and set(obj) == {"visit", "name"}
        if ok:
            visit, name = obj["visit"], obj["name"]
            ok = isinstance(name, str) and (
                visit is None or (isinstance(visit, int) and not isinstance(visit, bool))
            )
        if not ok:
            return f"JSON that is not {FORM}"
        text = name.strip()
    if not 0 < len(text) <= NAME_MAX:
        return f"a name of 1-{NAME_MAX} characters"
    if any(unicodedata.category(c)[0] == "C" for c in text):
        return "control characters in the name"
    return visit, text


class Commands:
    """Dispatches the command topics of one device."""

    def __init__(self, transport: Transport, presence: Presence) -> None:
        self._transport = transport
        self._presence = presence
        base = transport.base
        self.switch_topic = f"{base}/enabled/set"
        self.name_topic = f"{base}/visitor/name/set"
        self.ignore_topic = f"{base}/visitor/ignore"
        # set by the loop: handler(visit, name) names a visitor, name None ignores them
        self.visitor_handler: Callable[[int, str | None], bool] | None = None
        self.on_switch: Callable[[bool], None] | None = None  # after the switch changed

    def subscriptions(self) -> list[tuple[str, int]]:
        """The command topics, the switch last."""
        return [(self.name_topic, 1), (self.ignore_topic, 1), (self.switch_topic, 1)]

    def handles(self, topic: str) -> bool:
        return topic in (self.switch_topic, self.name_topic, self.ignore_topic)

    def handle(self, topic: str, raw: bytes, retained: bool) -> None:
        """One command message (network thread)."""
        if topic == self.switch_topic:
            self._switch(raw.decode("utf-8", "replace").strip(), retained)
        else:
            self._visitor_command(topic, raw, retained)

    def _switch(self, payload: str, retained: bool) -> None:
        """`<base>/enabled/set`: ON or OFF from a live client; a retained command is stale."""
        topic = self.switch_topic
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
        on = payload.upper() == "ON"
        log.info("recognition %s over MQTT", "enabled" if on else "disabled")
        self._presence.switch(on)
        if self.on_switch is not None:
            self.on_switch(on)

    def _visitor_command(self, topic: str, raw: bytes, retained: bool) -> None:
        """Name (text entity) or ignore (button) an unknown visitor: the one whose visit id
        the payload carries, else the last one. Refused, with one log line and the text
        entity's state: stale retained commands, payloads that are not a name, and a name or
        press without a visit id sent within CHANGED_S of a new visitor (the user may have
        seen the one before); a visit with no saved crops is refused by the library."""
        naming = topic == self.name_topic
        if retained:
            log.warning("MQTT: ignored the retained %s on %s (commands are not retained)", shown(raw), topic)  # fmt: skip
            return
        asked, name = None, None
        if naming:
            parsed = parse_name(raw)
            if isinstance(parsed, str):
                self._refuse(raw, topic, parsed)
                return
            asked, name = parsed
        visit, age = self._presence.last_visitor()
        target = asked if asked is not None else visit
        handler = self.visitor_handler
        if target is None:
            self._refuse(raw, topic, "no unknown visitor yet")
        elif handler is None:
            self._refuse(raw, topic, "unknown faces are not saved")
        elif asked is None and age < CHANGED_S:
            self._refuse(
                raw,
                topic,
                f"a new visitor ({visit}) came {age:.0f} s ago: look again and resend",
            )
        elif handler(target, name):
            log.info("MQTT: %s visitor %d%s", "naming" if naming else "ignoring", target,
                     f" as {shown(name)}" if naming else "")  # fmt: skip
            self._state(
                f"naming visitor {target} as {name}" if naming else f"ignoring visitor {target}"
            )
        else:
            self._refuse(raw, topic, "too many requests are waiting")

    def done(self, visit: int, name: str | None, error: str | None) -> None:
        """A request is done: the text entity's state says what happened."""
        if error:
            self._state(f"refused: {error}")
        else:
            self._state(f"named visitor {visit} as {name}" if name else f"ignored visitor {visit}")

    def _refuse(self, raw: bytes, topic: str, why: str) -> None:
        log.warning("MQTT: %s on %s ignored: %s", shown(raw), topic, why)
        self._state(f"refused: {why}")

    def _state(self, text: str) -> None:
        """The name_visitor text entity's state (Home Assistant drops longer ones)."""
        if len(text) > STATE_MAX:
            text = text[: STATE_MAX - 3] + "..."
        msg = self._transport.msg(f"{self._transport.base}/visitor/name", text.encode())
        self._transport.enqueue([msg], bounded=False)
