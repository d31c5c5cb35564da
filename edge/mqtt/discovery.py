"""Home Assistant discovery: the config payload of every entity, re-sent when Home Assistant
says `online`, and removal of entities this run no longer publishes.

A retained config under our node is ours only when its device is this edge-faces device;
another edge-faces device with the same node stops us; anyone else's is left alone.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from edge import __version__
from edge.config import Config
from edge.mqtt.messages import Message, log, person_topic, plain, to_json
from edge.mqtt.trackers import tracker_topic
from edge.mqtt.transport import Transport
from edge.slugs import slugify

NAME_MAX = 64  # characters of a visitor's name set from Home Assistant
STATE_MAX = 255  # characters of the text entity's state (Home Assistant's limit)
EVENT_TYPES = ("recognized", "unknown", "left")


class Discovery:
    """The device's Home Assistant entities, one binary sensor per person of the model."""

    def __init__(
        self,
        cfg: Config,
        transport: Transport,
        device_id: str,
        node: str,
        thermal: Path | None,
    ) -> None:
        self._m = cfg.mqtt
        self._web_url = cfg.web_url()
        self._cameras = [s.camera.name for s in cfg.cameras] if len(cfg.cameras) > 1 else []
        self._transport = transport
        self.base = transport.base
        self.device_id = device_id
        self.node = node
        self._thermal = thermal
        self._slugs: dict[str, str] = {}  # label -> slug, replaced whole (read unlocked)
        self._topics: set[str] = set()  # config topics this run publishes
        self._cleared: set[str] = set()  # config topics emptied by this run
        self._lock = threading.Lock()

    def subscriptions(self) -> list[tuple[str, int]]:
        """Our node's retained configs (ownership check) and Home Assistant's status."""
        if not self._m.discovery:
            return []
        prefix = self._m.discovery_prefix
        return [(f"{prefix}/+/{self.node}/+/config", 1), (f"{prefix}/status", 1)]

    def people(self, slugs: dict[str, str]) -> list[Message]:
        """Publish these people's entities from now on; the messages that remove the
        entities of slugs no longer among them."""
        with self._lock:
            old = set(self._slugs.values())
            self._slugs = dict(slugs)
            self._topics = set(self.payloads())
            self._cleared -= self._topics
            group: list[Message] = []
            for slug in sorted(old - set(slugs.values())):
                group += self._removal(self._person_config_topic(slug))
                if self._m.tracker_away_s > 0:
                    group += self._removal(self._tracker_config_topic(slug))
            return group

    def messages(self) -> list[Message]:
        """Every config as a retained message (the announcement on each connection)."""
        return [self._transport.msg(t, to_json(p)) for t, p in self.payloads().items()]

    def payloads(self) -> dict[str, dict[str, Any]]:
        """Home Assistant discovery: config topic -> payload for every entity of this device."""
        if not self._m.discovery:
            return {}
        prefix, base, node, qos = self._m.discovery_prefix, self.base, self.node, self._m.qos
        device = {
            "identifiers": [f"edge_faces_{node}"],
            "name": f"edge-faces {self.device_id}",
            "manufacturer": "edge-faces",
            "model": "Face recognizer",
            "sw_version": __version__,
        }
        if self._web_url:
            device["configuration_url"] = self._web_url  # the face library page (docs/web.md)
        common = {
            "device": device,
            "availability_topic": f"{base}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
            "origin": {"name": "edge-faces", "sw_version": __version__},
        }
        out: dict[str, dict[str, Any]] = {}

        def add(component: str, object_id: str, **cfg: Any) -> None:
            topic = f"{prefix}/{component}/{node}/{object_id}/config"
            out[topic] = {
                **cfg,
                "unique_id": f"edge_faces_{node}_{object_id}",
                "object_id": f"{node}_{object_id}",
                **common,
            }

        state = {"payload_on": "ON", "payload_off": "OFF", "qos": qos}
        for label, slug in self._slugs.items():
            add(
                "binary_sensor",
                f"person_{slug}",
                name=label,
                state_topic=person_topic(base, slug),
                json_attributes_topic=f"{person_topic(base, slug)}/attributes",
                device_class="occupancy",
                icon="mdi:account",
                **state,
            )
        for label, slug in self._slugs.items() if self._m.tracker_away_s > 0 else ():
            add(
                "device_tracker",
                f"tracker_{slug}",
                name=label,
                state_topic=tracker_topic(base, slug),
                json_attributes_topic=f"{person_topic(base, slug)}/attributes",
                source_type="router",  # a fixed place: `person` prefers it when it says home
                icon="mdi:home-account",
                qos=qos,
            )
        add(
            "binary_sensor",
            "unknown",
            name="Unknown person",
            state_topic=f"{base}/unknown",
            device_class="occupancy",
            icon="mdi:account-question",
            **state,
        )
        add(
            "sensor",
            "last_person",
            name="Last person",
            state_topic=f"{base}/last",
            value_template="{{ value_json.name }}",
            json_attributes_topic=f"{base}/last",
            icon="mdi:account-clock",
            qos=qos,
        )
        add(
            "event",
            "face",
            name="Face",
            state_topic=f"{base}/event",
            event_types=list(EVENT_TYPES),
            value_template=(
                "{{ {'event_type': value_json.type, 'name': value_json.name, "
                "'confidence': value_json.confidence, 'track': value_json.track, "
                "'visit': value_json.visit, 'camera': value_json.camera} | to_json }}"
            ),
            icon="mdi:face-recognition",
            qos=qos,
        )
        add(
            "image",
            "snapshot",
            name="Snapshot",
            image_topic=f"{base}/snapshot",
            content_type="image/jpeg",
        )
        add(
            "image",
            "last_visitor",
            name="Last unknown visitor",
            image_topic=f"{base}/visitor/image",
            content_type="image/jpeg",
            json_attributes_topic=f"{base}/visitor",
        )
        add(
            "text",
            "name_visitor",
            name="Name the last visitor",
            command_topic=f"{base}/visitor/name/set",
            # The visit the dashboard shows goes with the name: a newer visitor is not named.
            command_template=(
                f'{{{{ {{"visit": state_attr("image.{node}_last_visitor", "visit"), '
                f'"name": value}} | to_json }}}}'
            ),
            state_topic=f"{base}/visitor/name",
            json_attributes_topic=f"{base}/visitor",
            min=0,
            max=STATE_MAX,  # the state says what was done ("named visitor 12 as Tony")
            icon="mdi:account-edit",
            qos=qos,
        )
        add(
            "button",
            "ignore_visitor",
            name="Ignore the last visitor",
            command_topic=f"{base}/visitor/ignore",
            payload_press="PRESS",
            icon="mdi:account-cancel",
            qos=qos,
        )
        diag = {"state_topic": f"{base}/stats", "entity_category": "diagnostic"}
        add(
            "sensor",
            "fps",
            name="FPS",
            value_template="{{ value_json.fps }}",
            unit_of_measurement="fps",
            state_class="measurement",
            icon="mdi:speedometer",
            **diag,
        )
        for name in self._cameras:  # several cameras: each one's fps and whether it delivers
            key, cam = slugify(name), f"value_json.cameras[{json.dumps(name)}]"
            add(
                "sensor",
                f"camera_{key}_fps",
                name=f"{name} FPS",
                value_template=f"{{{{ {cam}.fps }}}}",
                unit_of_measurement="fps",
                state_class="measurement",
                icon="mdi:cctv",
                **diag,
            )
            add(
                "binary_sensor",
                f"camera_{key}",
                name=f"{name} camera",
                value_template=f"{{{{ 'OFF' if {cam}.lost else 'ON' }}}}",
                device_class="connectivity",
                payload_on="ON",
                payload_off="OFF",
                **diag,
            )
        add(
            "sensor",
            "latency",
            name="Latency",
            value_template="{{ value_json.latency_ms }}",
            unit_of_measurement="ms",
            device_class="duration",
            state_class="measurement",
            **diag,
        )
        if self._thermal is not None:
            add(
                "sensor",
                "cpu_temperature",
                name="CPU temperature",
                value_template="{{ value_json.cpu_temp_c }}",
                unit_of_measurement="°C",
                device_class="temperature",
                state_class="measurement",
                **diag,
            )
        add(
            "sensor",
            "mqtt_dropped",
            name="MQTT messages dropped",
            value_template="{{ value_json.mqtt.dropped }}",
            state_class="total_increasing",
            icon="mdi:message-alert",
            **diag,
        )
        add(
            "switch",
            "enabled",
            name="Recognition",
            state_topic=f"{base}/enabled",
            command_topic=f"{base}/enabled/set",
            payload_on="ON",
            payload_off="OFF",
            state_on="ON",
            state_off="OFF",
            entity_category="config",
            icon="mdi:face-recognition",
            qos=qos,
        )
        return out

    # --- messages from the broker (network thread) -----------------------------------------
    def handles(self, topic: str) -> bool:
        """Whether `topic` is Home Assistant's status or a config under its prefix."""
        return topic.startswith(f"{self._m.discovery_prefix}/")

    def handle(self, topic: str, payload: str) -> None:
        """`online` from Home Assistant: announce again; a retained config: check its owner."""
        prefix = self._m.discovery_prefix
        if topic == f"{prefix}/status":
            if payload == "online":
                self._transport.rediscover()
            return
        if topic.endswith("/config") and payload:
            self._retained_config(topic, payload)

    def _retained_config(self, topic: str, payload: str) -> None:
        """A retained discovery config under our node: ours (remove it if this run does not
        publish it), another edge-faces device's with the same node (refuse to run), or
        another program's (leave it alone)."""
        try:
            cfg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(cfg, dict) or not str(cfg.get("unique_id", "")).startswith(
            f"edge_faces_{self.node}_"
        ):
            return  # not published by edge-faces: an ESPHome node of the same name, say
        device = cfg.get("device")
        owner = device.get("name") if isinstance(device, dict) else None
        if not isinstance(owner, str) or not owner.startswith("edge-faces "):
            return
        if owner == f"edge-faces {self.device_id}":  # ours, whatever the topic prefix was
            self._forget_entity(topic)
            return
        other = plain(owner.removeprefix("edge-faces "))
        self._transport.fail(
            f"mqtt.device_id {self.device_id!r} gives the Home Assistant node "
            f"{self.node!r}, which edge-faces device '{other}' already uses on "
            f"{self._transport.where} ({plain(topic)}): choose another mqtt.device_id, or "
            f"delete device 'edge-faces {other}' in Home Assistant if it no longer exists"
        )

    def _person_config_topic(self, slug: str) -> str:
        return f"{self._m.discovery_prefix}/binary_sensor/{self.node}/person_{slug}/config"

    def _tracker_config_topic(self, slug: str) -> str:
        return f"{self._m.discovery_prefix}/device_tracker/{self.node}/tracker_{slug}/config"

    def _removal(self, topic: str) -> list[Message]:
        """Empty retained config (Home Assistant deletes the entity) and, for a person, their
        retained state topics."""
        self._cleared.add(topic)
        object_id = topic.split("/")[-2]
        msg = self._transport.msg
        group = [msg(topic, b"")]
        if object_id.startswith("person_"):
            person = person_topic(self.base, object_id.removeprefix("person_"))
            group += [msg(person, b""), msg(f"{person}/attributes", b"")]
        elif object_id.startswith("tracker_"):
            group.append(msg(tracker_topic(self.base, object_id.removeprefix("tracker_")), b""))
        log.info("MQTT: removing Home Assistant entity %s (no longer published)", plain(object_id))
        return group

    def _forget_entity(self, topic: str) -> None:
        """A retained discovery config of this device that this run does not publish."""
        with self._lock:
            if topic in self._topics or topic in self._cleared:
                return
            self._transport.enqueue(self._removal(topic), bounded=False)
