"""Commands from Home Assistant: the recognition switch, naming and ignoring the last visitor.

Commands are never retained: a retained one was left by some client long ago and is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.mqtt.discovery import NAME_MAX
from edge.mqtt.messages import log, shown
from edge.mqtt.presence import Presence
from edge.mqtt.transport import Transport


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

    def subscriptions(self) -> list[tuple[str, int]]:
        """The command topics, the switch last."""
        return [(self.name_topic, 1), (self.ignore_topic, 1), (self.switch_topic, 1)]

    def handles(self, topic: str) -> bool:
        return topic in (self.switch_topic, self.name_topic, self.ignore_topic)

    def handle(self, topic: str, payload: str, retained: bool) -> None:
        """One command message (network thread)."""
        if topic == self.switch_topic:
            self._switch(payload, retained)
        else:
            self._visitor_command(topic, payload, retained)

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

    def _visitor_command(self, topic: str, payload: str, retained: bool) -> None:
        """Name (text entity) or ignore (button) the last unknown visitor; stale retained
        commands and over-long names are refused with one line."""
        naming = topic == self.name_topic
        if retained:
            log.warning("MQTT: ignored the retained %s on %s (commands are not retained)", shown(payload), topic)  # fmt: skip
            return
        if naming and not 0 < len(payload) <= NAME_MAX:
            log.warning("MQTT: ignored %s on %s (a name of 1-%d characters)", shown(payload), topic, NAME_MAX)  # fmt: skip
            return
        visit = self._presence.last_visitor
        handler = self.visitor_handler
        if visit is None or handler is None:
            why = "no unknown visitor yet" if visit is None else "unknown faces are not saved"
            log.warning("MQTT: %s on %s ignored: %s", shown(payload), topic, why)
            return
        if handler(visit, payload if naming else None):
            log.info("MQTT: %s visitor %d%s", "naming" if naming else "ignoring", visit,
                     f" as {shown(payload)}" if naming else "")  # fmt: skip
            if naming:
                state = self._transport.msg(
                    f"{self._transport.base}/visitor/name", payload.encode()
                )
                self._transport.enqueue([state], bounded=False)
