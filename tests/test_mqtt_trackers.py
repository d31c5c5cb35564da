"""Per-person device_tracker over MQTT discovery: home when recognized, not_home
mqtt.tracker_away_s after they left (cancelled when they come back), reset at start,
everyone away after the switch turns recognition off; removed with the person."""

from __future__ import annotations

import json
import time

import pytest

from edge.mqtt import MqttSink
from tests.broker import Broker, Recorder, retained
from tests.test_mqtt import BASE, ev, make_cfg

AWAY_S = 1.0


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as b:
        yield b


def _states(rec: Recorder, slug: str) -> list[str]:
    return [m.text for m in rec.on(f"{BASE}/tracker/{slug}")]


def test_tracker_goes_home_and_away_after_the_timeout(broker):
    with Recorder(broker, [f"{BASE}/tracker/#", "homeassistant/device_tracker/#"]) as rec:
        sink = MqttSink(make_cfg(broker, **{"mqtt.tracker_away_s": AWAY_S}))
        sink.start(["Alice", "Bob Smith"])
        assert rec.wait_payload(f"{BASE}/tracker/bob_smith", "not_home")
        assert rec.wait_payload(f"{BASE}/tracker/alice", "not_home")
        config = json.loads(rec.last("homeassistant/device_tracker/pi/tracker_bob_smith/config").payload)  # fmt: skip
        assert config["state_topic"] == f"{BASE}/tracker/bob_smith"
        assert config["unique_id"] == "edge_faces_pi_tracker_bob_smith"
        assert config["name"] == "Bob Smith" and config["source_type"] == "router"
        assert config["availability_topic"] == f"{BASE}/status"
        assert config["json_attributes_topic"] == f"{BASE}/person/bob_smith/attributes"

        sink.event(ev("recognized", "Alice", 1, 10))
        assert rec.wait_payload(f"{BASE}/tracker/alice", "home")
        left = time.monotonic()
        sink.event(ev("left", "Alice", 1, 20))
        assert rec.wait_payload(f"{BASE}/tracker/alice", "not_home", timeout=AWAY_S + 10)
        assert time.monotonic() - left >= AWAY_S * 0.9
        assert _states(rec, "alice") == ["not_home", "home", "not_home"]

        # Back before the timeout: stays home, no not_home in between.
        sink.event(ev("recognized", "Alice", 2, 30))
        assert rec.wait_payload(f"{BASE}/tracker/alice", "home")
        sink.event(ev("left", "Alice", 2, 40))
        sink.event(ev("recognized", "Alice", 3, 41))
        time.sleep(AWAY_S * 2)  # the cancelled timeout would have fired by now
        assert _states(rec, "alice")[-2:] == ["not_home", "home"]
        assert retained(broker, f"{BASE}/tracker/#", 0.3)[f"{BASE}/tracker/alice"] == b"home"

        # Recognition switched off: nobody is watched, so everyone home leaves after the timeout.
        rec.client.publish(f"{BASE}/enabled/set", "OFF", qos=1)
        assert rec.wait_payload(f"{BASE}/tracker/alice", "not_home", timeout=AWAY_S + 10)
        assert _states(rec, "bob_smith") == ["not_home"]
        sink.close()


def test_tracker_removed_with_the_person_and_off_when_configured(broker):
    first = MqttSink(make_cfg(broker))
    first.start(["Alice", "Bob"])
    first.close()
    bob = "homeassistant/device_tracker/pi/tracker_bob/config"
    assert bob in retained(broker, "#", 0.5)
    second = MqttSink(make_cfg(broker, **{"mqtt.tracker_away_s": 0}))  # no trackers
    second.start(["Alice"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = retained(broker, "#", 0.3)
        if not any("/device_tracker/" in t or "/tracker/" in t for t in held):
            break
    assert not any("/device_tracker/" in t or "/tracker/" in t for t in held), sorted(held)
    assert "homeassistant/binary_sensor/pi/person_alice/config" in held
    second.close()
