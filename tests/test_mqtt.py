"""MqttSink against a real Mosquitto: topics, retain flags, discovery, reconnects, security."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import UserError
from edge.mqtt import MqttSink
from edge.slugs import (
    load_slug_book,
    person_slugs,
    read_slugs,
    slug_book_path,
    slugify,
    with_new_people,
)
from tests.broker import Broker, Recorder, Tls, make_cert, retained

BASE = "edge/pi"
JPEG = bytes.fromhex("ffd8ffe000104a464946") + b"test-jpeg" + bytes.fromhex("ffd9")

# Keys Home Assistant's MQTT schema requires (or needs to be useful) per component.
REQUIRED = {
    "binary_sensor": {"state_topic", "payload_on", "payload_off", "device_class"},
    "sensor": {"state_topic"},
    "event": {"state_topic", "event_types"},
    "image": {"image_topic"},
    "switch": {"command_topic", "state_topic"},
    "text": {"command_topic"},
    "button": {"command_topic"},
    "device_tracker": {"state_topic", "source_type"},
}
COMMON = {"name", "unique_id", "device", "availability_topic", "payload_available"}


def make_cfg(broker: Broker, **over):
    base = {
        "mqtt.host": broker.host,
        "mqtt.port": broker.port,
        "mqtt.device_id": "pi",
        "mqtt.reconnect_max_s": 1,
    }
    return load_config(None, {**base, **over})


def ev(kind: str, name: str | None, track: int, frame: int, conf: float = 0.9) -> dict:
    return {
        "type": kind,
        "name": name,
        "confidence": conf,
        "track": track,
        "visit": track,
        "box": [1, 2, 30, 40],
        "frame": frame,
        "source_time": frame / 15,
        "time": 1_700_000_000.0 + frame,
    }


@pytest.fixture
def broker(tmp_path: Path):
    with Broker(tmp_path / "broker") as b:
        yield b


def mqtt_records(caplog, level=logging.WARNING) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "edge.mqtt" and r.levelno >= level]


def test_slugs():
    assert slugify("Zoë Müller-Smith") == "zoe_muller_smith"
    assert person_slugs(["Anna B", "anna_b", "!!"]) == {
        "Anna B": "anna_b",
        "anna_b": "anna_b_2",
        "!!": "person",
    }


def test_bad_topic_parts_are_one_line_errors(broker):
    with pytest.raises(UserError, match=r"mqtt.device_id: 'a\+b'"):
        MqttSink(make_cfg(broker, **{"mqtt.device_id": "a+b"}))
    with pytest.raises(UserError, match="mqtt.host is empty"):
        MqttSink(load_config(None))


def test_discovery_payloads_and_retained_states(broker):
    labels = ["Alice", "Bob Smith", "Zoë"]
    with Recorder(broker, ["#"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(labels)
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        sink.event(ev("recognized", "Alice", 1, 10), JPEG)
        sink.event(ev("unknown", None, 2, 11), JPEG)
        assert rec.wait_for(lambda: len(rec.on(f"{BASE}/event")) == 2)
        held = retained(broker, "#")
        configs = {t: json.loads(p) for t, p in held.items() if t.startswith("homeassistant/")}
        by_object = {t.split("/")[-2]: (t.split("/")[1], c) for t, c in configs.items()}
        assert {"person_alice", "person_bob_smith", "person_zoe", "unknown"} <= set(by_object)
        components = {comp for comp, _ in by_object.values()}
        assert components == set(REQUIRED)
        devices = set()
        for object_id, (component, cfg) in by_object.items():
            missing = (REQUIRED[component] | COMMON) - set(cfg)
            assert not missing, f"{component}/{object_id} lacks {missing}"
            assert cfg["availability_topic"] == f"{BASE}/status"
            devices.add(json.dumps(cfg["device"], sort_keys=True))
            assert cfg["device"]["identifiers"]
        assert len(devices) == 1, "every entity on one device"
        assert len({c["unique_id"] for _, c in by_object.values()}) == len(by_object)
        person = by_object["person_bob_smith"][1]
        assert person["name"] == "Bob Smith"  # friendly name is the label
        assert person["state_topic"] == f"{BASE}/person/bob_smith"
        assert person["device_class"] in ("presence", "occupancy")
        assert by_object["face"][1]["event_types"][:2] == ["recognized", "unknown"]
        assert by_object["last_person"][1]["json_attributes_topic"] == f"{BASE}/last"
        assert by_object["snapshot"][1]["image_topic"] == f"{BASE}/snapshot"
        assert by_object["enabled"][1]["command_topic"] == f"{BASE}/enabled/set"
        assert {"fps", "latency", "mqtt_dropped"} <= set(by_object)
        # States retained as the design says; events and stats are not.
        assert held[f"{BASE}/status"] == b"online"
        assert held[f"{BASE}/person/alice"] == b"ON"
        assert held[f"{BASE}/person/bob_smith"] == b"OFF"
        assert held[f"{BASE}/unknown"] == b"ON"
        assert held[f"{BASE}/enabled"] == b"ON"
        assert held[f"{BASE}/snapshot"] == JPEG
        last = json.loads(held[f"{BASE}/last"])
        assert (last["name"], last["visit"]) == ("Alice", 1)
        attrs = json.loads(held[f"{BASE}/person/alice/attributes"])
        assert attrs["confidence"] == 0.9 and attrs["last_seen"].startswith("2023-11-14T22:")
        assert f"{BASE}/event" not in held
        live = rec.on(f"{BASE}/event")
        assert [json.loads(m.payload) for m in live] == [
            ev("recognized", "Alice", 1, 10),
            ev("unknown", None, 2, 11),
        ]
        sink.stats({"fps": 14.5, "latency_ms": 80.0})
        assert rec.wait_for(lambda: rec.on(f"{BASE}/stats"))
        stats = json.loads(rec.last(f"{BASE}/stats").payload)
        assert stats["fps"] == 14.5 and stats["mqtt"]["dropped"] == 0
        assert f"{BASE}/stats" not in retained(broker, f"{BASE}/#", 0.5)
        # Leaving: presence OFF; close() says offline.
        sink.event(ev("left", "Alice", 1, 20))
        sink.event(ev("left", None, 2, 21))
        sink.close()
        held = retained(broker, f"{BASE}/#", 0.5)
        assert held[f"{BASE}/person/alice"] == b"OFF"
        assert held[f"{BASE}/unknown"] == b"OFF"
        assert held[f"{BASE}/status"] == b"offline"


def test_close_turns_present_people_off(broker):
    sink = MqttSink(make_cfg(broker))
    sink.start(["Alice"])
    sink.event(ev("recognized", "Alice", 1, 1))
    sink.event(ev("unknown", None, 2, 2))
    sink.close()
    held = retained(broker, f"{BASE}/#", 0.5)
    assert held[f"{BASE}/person/alice"] == b"OFF"
    assert held[f"{BASE}/unknown"] == b"OFF"
    assert held[f"{BASE}/status"] == b"offline"


def test_broker_restart_during_burst_delivers_all_in_order(broker, caplog):
    caplog.set_level(logging.INFO)
    n = 400
    with Recorder(broker, [f"{BASE}/event"], client_id="burst") as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])

        def burst():
            for i in range(n):
                sink.event(ev("unknown", None, i, i))
                time.sleep(0.004)

        sender = threading.Thread(target=burst)
        sender.start()
        time.sleep(0.4)
        broker.stop()
        time.sleep(1.0)
        broker.start()
        sender.join()
        assert rec.wait_for(lambda: len({m.payload for m in rec.messages}) >= n, 30)
        sink.close()
    frames = [json.loads(m.payload)["frame"] for m in rec.messages]
    first_seen = list(dict.fromkeys(frames))  # QoS 1 may repeat one; never reorder or lose
    assert first_seen == list(range(n))
    assert sink.dropped == 0
    lost = [r for r in mqtt_records(caplog) if "lost" in r.getMessage()]
    assert len(lost) == 1
    assert not any(r.exc_info for r in caplog.records)


def test_queue_bound_drops_oldest_events_keeps_states(tmp_path):
    broker = Broker(tmp_path / "b")
    rec = Recorder(broker, [f"{BASE}/#"], client_id="bounded")
    with broker, rec:
        pass  # the recorder's persistent session now waits in the broker for what follows
    sink = MqttSink(make_cfg(broker, **{"mqtt.queue_size": 5}))
    sink.start(["Alice", "Bob"])  # broker down: everything waits in the queue
    sink.event(ev("recognized", "Alice", 1, 0))  # Alice arrives; this event is then dropped
    for i in range(1, 20):
        sink.event(ev("unknown", None, 100 + i, i))
    assert sink.dropped == 15
    sink.stats({"fps": 1.0})
    with broker, rec:
        assert rec.wait_for(lambda: len(rec.on(f"{BASE}/event")) == 5, 15)
        assert [json.loads(m.payload)["frame"] for m in rec.on(f"{BASE}/event")] == list(
            range(15, 20)
        )
        assert rec.wait_for(lambda: rec.on(f"{BASE}/stats"))
        assert json.loads(rec.last(f"{BASE}/stats").payload)["mqtt"]["dropped"] == 15
        sink.close()
        held = retained(broker, f"{BASE}/#", 0.5)
    # Alice's ON was carried past the dropped event (the start-up OFF it superseded was
    # not), then close() turned her OFF: the states stayed consistent.
    assert [m.payload for m in rec.on(f"{BASE}/person/alice")] == [b"ON", b"OFF"]
    assert held[f"{BASE}/person/bob"] == b"OFF"


def test_enable_switch(broker):
    with Recorder(broker, [f"{BASE}/enabled", f"{BASE}/person/#"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        sink.event(ev("recognized", "Alice", 1, 1))
        assert rec.wait_payload(f"{BASE}/person/alice", "ON")
        rec.client.publish(f"{BASE}/enabled/set", "OFF", qos=1)
        assert rec.wait_payload(f"{BASE}/enabled", "OFF")
        assert sink.enabled is False
        # The loop forgets everyone when switched off, so nobody is shown present.
        assert rec.wait_payload(f"{BASE}/person/alice", "OFF")
        rec.client.publish(f"{BASE}/enabled/set", "bogus", qos=1)
        rec.client.publish(f"{BASE}/enabled/set", "ON", qos=1)
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        assert sink.enabled is True
        assert retained(broker, f"{BASE}/enabled", 0.3)[f"{BASE}/enabled"] == b"ON"
        sink.close()


def test_discovery_resent_when_home_assistant_comes_online(broker):
    topic = "homeassistant/binary_sensor/pi/person_alice/config"
    with Recorder(broker, ["homeassistant/#"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])
        assert rec.wait_for(lambda: len(rec.on(topic)) == 1)
        rec.client.publish("homeassistant/status", "online", qos=1)
        assert rec.wait_for(lambda: len(rec.on(topic)) == 2)
        assert json.loads(rec.on(topic)[-1].payload)["name"] == "Alice"
        sink.close()


def test_person_removed_from_model_loses_entity(broker):
    first = MqttSink(make_cfg(broker))
    first.start(["Alice", "Bob"])
    first.event(ev("recognized", "Bob", 1, 1))
    first.close()
    bob_cfg = "homeassistant/binary_sensor/pi/person_bob/config"
    held = retained(broker, "#", 0.5)
    assert bob_cfg in held and f"{BASE}/person/bob/attributes" in held
    second = MqttSink(make_cfg(broker))
    second.start(["Alice"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = retained(broker, "#", 0.3)
        if bob_cfg not in held:
            break
    assert bob_cfg not in held, "empty retained config removes the entity"
    assert "homeassistant/binary_sensor/pi/person_alice/config" in held
    assert f"{BASE}/person/bob" not in held and f"{BASE}/person/bob/attributes" not in held
    second.close()


def test_own_configs_from_another_topic_prefix_are_ours(broker):
    """mqtt.topic_prefix changed: the device's old configs are its own, not a clash."""
    first = MqttSink(make_cfg(broker, **{"mqtt.topic_prefix": "home"}))
    first.start(["Alice", "Bob"])
    first.close()
    bob = "homeassistant/binary_sensor/pi/person_bob/config"
    assert bob in retained(broker, "homeassistant/#", 0.5)
    second = MqttSink(make_cfg(broker))
    second.start(["Alice"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and bob in retained(broker, "homeassistant/#", 0.3):
        pass
    second.close()
    assert second.failure is None
    held = retained(broker, "homeassistant/#", 0.5)
    assert bob not in held
    alice = json.loads(held["homeassistant/binary_sensor/pi/person_alice/config"])
    assert alice["availability_topic"] == f"{BASE}/status"


def test_password_broker(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    secret = "s3cret-Pa55"
    with Broker(tmp_path / "b", users={"edge": secret, "ha": "hapass"}) as broker:
        monkeypatch.setenv("EDGE_TEST_MQTT_PW", "wrong-Pa55")
        cfg = make_cfg(
            broker, **{"mqtt.username": "edge", "mqtt.password_env": "EDGE_TEST_MQTT_PW"}
        )
        with Recorder(broker, [f"{BASE}/status"], username="ha", password="hapass") as rec:
            sink = MqttSink(cfg)
            sink.start(["Alice"])
            sink.event(ev("recognized", "Alice", 1, 1))
            time.sleep(3.5)  # several refused attempts (backoff capped at 1 s)
            errors = mqtt_records(caplog, logging.ERROR)
            assert len(errors) == 1, [r.getMessage() for r in errors]
            msg = errors[0].getMessage()
            assert "refused" in msg and "mqtt.username 'edge'" in msg
            assert "$EDGE_TEST_MQTT_PW" in msg
            assert errors[0].exc_info is None
            broker.set_password("edge", "wrong-Pa55")  # the admin fixes the account
            assert rec.wait_payload(f"{BASE}/status", "online", 10)
            sink.close()
        assert "wrong-Pa55" not in caplog.text and secret not in caplog.text
        # The password file is an alternative to the variable.
        pw = tmp_path / "pw"
        pw.write_text("wrong-Pa55\n")
        sink = MqttSink(
            make_cfg(broker, **{"mqtt.username": "edge", "mqtt.password_file": str(pw)})
        )
        sink.start([])
        with Recorder(broker, [f"{BASE}/status"], username="ha", password="hapass") as rec:
            assert rec.wait_payload(f"{BASE}/status", "online", 10)
        sink.close()


def test_tls_broker_with_client_certificate(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    tls = Tls.create(tmp_path / "pki")
    broker = Broker(tmp_path / "b", tls=tls, require_client_cert=True)
    with broker, Recorder(broker, [f"{BASE}/status"]) as rec:
        tls_keys = {
            "mqtt.tls.ca_file": str(tls.ca),
            "mqtt.tls.certfile": str(tls.client_cert),
            "mqtt.tls.keyfile": str(tls.client_key),
        }
        sink = MqttSink(make_cfg(broker, **tls_keys))
        sink.start([])
        assert rec.wait_payload(f"{BASE}/status", "online")
        sink.close()
        assert rec.wait_payload(f"{BASE}/status", "offline")
        assert not mqtt_records(caplog, logging.WARNING)

        # Wrong CA: one clear line, retries, connects once the broker's certificate is fixed.
        sink = MqttSink(make_cfg(broker, **{**tls_keys, "mqtt.tls.ca_file": str(tls.other_ca)}))
        sink.start([])
        time.sleep(3.5)
        errors = mqtt_records(caplog, logging.ERROR)
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "TLS certificate check failed" in errors[0].getMessage()
        assert "mqtt.tls.ca_file" in errors[0].getMessage()
        assert errors[0].exc_info is None
        fixed = make_cert(tmp_path / "pki", (tls.other_ca, tls.other_ca_key), "server2", True)
        broker.use_server_cert(*fixed)
        broker.stop()
    with broker, Recorder(broker, [f"{BASE}/status"], ca=tls.other_ca) as rec:
        assert rec.wait_payload(f"{BASE}/status", "online", 10)
        sink.close()


def test_reloaded_model_updates_entities(broker):
    sink = MqttSink(make_cfg(broker))
    sink.start(["Alice", "Bob"])
    with Recorder(broker, ["#"]) as rec:
        assert rec.wait_payload(f"{BASE}/person/bob", "OFF")
        sink.start(["Alice", "Carol"])  # SIGHUP with a retrained model
        carol = "homeassistant/binary_sensor/pi/person_carol/config"
        bob = "homeassistant/binary_sensor/pi/person_bob/config"
        assert rec.wait_for(lambda: rec.on(carol) and rec.on(bob) and not rec.last(bob).payload)
        assert rec.wait_payload(f"{BASE}/person/carol", "OFF")
        sink.close()
    held = retained(broker, "#", 0.5)
    assert bob not in held and carol in held and f"{BASE}/person/bob" not in held


def test_cpu_temperature_from_the_thermal_zone(broker, tmp_path, monkeypatch):
    import edge.mqtt.presence

    zone = tmp_path / "thermal" / "thermal_zone0"  # the layout of a Pi's /sys/class/thermal
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    monkeypatch.setattr(edge.mqtt.presence, "THERMAL", tmp_path / "thermal")
    with Recorder(broker, [f"{BASE}/stats", "homeassistant/sensor/#"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start([])
        topic = "homeassistant/sensor/pi/cpu_temperature/config"
        assert rec.wait_for(lambda: rec.on(topic))
        config = json.loads(rec.last(topic).payload)
        assert config["device_class"] == "temperature" and config["entity_category"] == "diagnostic"
        sink.stats({"fps": 3.0, "latency_s": {"median": 0.25, "p95": 0.4, "count": 2}})
        assert rec.wait_for(lambda: rec.on(f"{BASE}/stats"))
        stats = json.loads(rec.last(f"{BASE}/stats").payload)
        assert stats["cpu_temp_c"] == 48.3 and stats["latency_ms"] == 250.0
        sink.close()


def test_other_programs_configs_on_the_same_node_are_left_alone(broker):
    """An ESPHome doorbell whose node is also `pi`: edge removes only what edge published."""
    esphome = {
        "homeassistant/sensor/pi/wifi_signal/config": {
            "name": "WiFi Signal",
            "unique_id": "esphome_pi_wifi_signal",
            "state_topic": "pi/sensor/wifi_signal/state",
            "availability_topic": "pi/status",
        },
        "homeassistant/binary_sensor/pi/doorbell_button/config": {
            "name": "Doorbell",
            "unique_id": "esphome_pi_doorbell_button",
            "state_topic": "pi/binary_sensor/doorbell_button/state",
        },
    }
    with Recorder(broker, []) as rec:
        for topic, cfg in esphome.items():
            rec.client.publish(topic, json.dumps(cfg), qos=1, retain=True).wait_for_publish()
    gone = "homeassistant/binary_sensor/pi/person_bob/config"
    first = MqttSink(make_cfg(broker))
    first.start(["Alice", "Bob"])
    first.close()
    second = MqttSink(make_cfg(broker))
    second.start(["Alice"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and gone in (held := retained(broker, "#", 0.3)):
        pass
    second.close()
    held = retained(broker, "homeassistant/#", 0.5)
    assert gone not in held, "edge's own stale entity is still removed"
    for topic, cfg in esphome.items():
        assert json.loads(held[topic]) == cfg


def test_device_ids_with_the_same_slug_are_refused(broker, caplog):
    """'Front Door' runs; 'front-door' (same node) refuses to start and leaves it alone."""
    caplog.set_level(logging.INFO)
    first = MqttSink(make_cfg(broker, **{"mqtt.device_id": "Front Door"}))
    first.start(["Alice"])
    with Recorder(broker, ["edge/Front Door/status"]) as rec:
        assert rec.wait_payload("edge/Front Door/status", "online")
        second = MqttSink(make_cfg(broker, **{"mqtt.device_id": "front-door"}))
        second.start(["Alice"])
        deadline = time.monotonic() + 10
        while second.failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second.close()
        assert second.failure is not None
        assert "mqtt.device_id 'front-door'" in second.failure
        assert "'Front Door' already uses" in second.failure
        held = retained(broker, "homeassistant/#", 0.5)
        config = json.loads(held["homeassistant/binary_sensor/front_door/person_alice/config"])
        assert config["availability_topic"] == "edge/Front Door/status"
        assert first.reconnects == 0
        assert [m.payload for m in rec.messages] == [b"online"]
        assert "edge/front-door/status" not in retained(broker, "edge/#", 0.3)
    first.close()


def test_retained_switch_command_is_ignored(broker, caplog):
    """A retained OFF left on enabled/set by some client does not silence a fresh start."""
    caplog.set_level(logging.INFO)
    with Recorder(broker, [f"{BASE}/enabled", f"{BASE}/person/alice"]) as rec:
        rec.client.publish(f"{BASE}/enabled/set", "OFF", qos=1, retain=True).wait_for_publish()
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        sink.event(ev("recognized", "Alice", 1, 1))
        assert rec.wait_payload(f"{BASE}/person/alice", "ON"), "the event was not dropped"
        sink.close()
    assert sink.enabled is True
    ignored = [r.getMessage() for r in mqtt_records(caplog) if "retained" in r.getMessage()]
    assert len(ignored) == 1 and "'OFF' on edge/pi/enabled/set" in ignored[0]


def test_event_computed_before_the_switch_off_does_not_turn_presence_on(broker):
    """The loop may publish an arrival it computed just before the OFF reached it."""
    with Recorder(broker, [f"{BASE}/enabled"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        rec.client.publish(f"{BASE}/enabled/set", "OFF", qos=1)
        assert rec.wait_payload(f"{BASE}/enabled", "OFF")
        sink.event(ev("unknown", None, 1, 1))  # in flight in the loop when OFF arrived
        sink.event(ev("recognized", "Alice", 2, 2))
        rec.client.publish(f"{BASE}/enabled/set", "ON", qos=1)  # queued after those events
        assert rec.wait_payload(f"{BASE}/enabled", "ON")
        held = retained(broker, f"{BASE}/#", 0.5)
        sink.close()
    assert held[f"{BASE}/unknown"] == b"OFF"
    assert held[f"{BASE}/person/alice"] == b"OFF"


def test_network_payloads_are_logged_cut_short_and_rediscovery_is_rate_limited(broker, caplog):
    caplog.set_level(logging.INFO)
    topic = "homeassistant/binary_sensor/pi/person_alice/config"
    with Recorder(broker, [topic, f"{BASE}/enabled"]) as rec:
        sink = MqttSink(make_cfg(broker))
        sink.start(["Alice"])
        assert rec.wait_for(lambda: len(rec.on(topic)) == 1)
        rec.client.publish(f"{BASE}/enabled/set", "X" * 1_000_000, qos=1).wait_for_publish()
        for _ in range(300):
            rec.client.publish("homeassistant/status", "online", qos=1)
        rec.client.publish(f"{BASE}/enabled/set", "OFF", qos=1).wait_for_publish()
        assert rec.wait_payload(f"{BASE}/enabled", "OFF")  # every message before it was handled
        assert rec.wait_for(lambda: len(rec.on(topic)) >= 2)
        time.sleep(1.0)
        sink.close()
    assert len(rec.on(topic)) == 2, "one re-announcement for a flood of `online`"
    longest = max(len(r.getMessage()) for r in caplog.records)
    assert longest < 300
    assert "(1000000 characters)" in caplog.text
    said = [r for r in caplog.records if "Home Assistant is online" in r.getMessage()]
    assert len(said) <= 2


def test_the_last_visitor_is_named_or_ignored_from_home_assistant(broker, caplog, monkeypatch):
    """The visit id travels with the entities; a name meant for another visitor, or sent
    without one just after the visitor changed, and payloads that are not names are refused;
    the text entity's state says what was done."""
    import edge.mqtt.commands

    caplog.set_level(logging.INFO)
    calls: list[tuple[int, str | None]] = []
    state = f"{BASE}/visitor/name"
    with Recorder(broker, [f"{BASE}/visitor/#", f"{BASE}/visitor", "homeassistant/#"]) as rec:
        stale = rec.client.publish(f"{BASE}/visitor/name/set", "Tony", qos=1, retain=True)
        stale.wait_for_publish()  # left by some client before edge starts: never acted on
        sink = MqttSink(make_cfg(broker))
        sink.visitor_handler = lambda visit, name: calls.append((visit, name)) or True
        sink.start(["Alice"])
        wanted = ("name_visitor", "ignore_visitor", "last_visitor")
        assert rec.wait_for(lambda: all(any(w in m.topic for m in rec.messages) for w in wanted))
        configs = {
            m.topic: json.loads(m.payload) for m in rec.messages if m.topic.endswith("/config")
        }
        text = configs["homeassistant/text/pi/name_visitor/config"]
        assert text["command_topic"] == f"{BASE}/visitor/name/set" and text["max"] == 255
        assert text["json_attributes_topic"] == f"{BASE}/visitor"
        assert 'state_attr("image.pi_last_visitor", "visit")' in text["command_template"]
        button = configs["homeassistant/button/pi/ignore_visitor/config"]
        assert button["command_topic"] == f"{BASE}/visitor/ignore"
        image = configs["homeassistant/image/pi/last_visitor/config"]
        assert image["image_topic"] == f"{BASE}/visitor/image"
        assert image["json_attributes_topic"] == f"{BASE}/visitor"

        def say(payload: str | bytes, topic: str = f"{BASE}/visitor/name/set") -> None:
            rec.client.publish(topic, payload, qos=1)

        say("Tony")  # nobody came yet
        assert rec.wait_payload(state, "refused: no unknown visitor yet")
        sink.event(ev("unknown", None, 7, 70), JPEG)
        assert rec.wait_payload(f"{BASE}/visitor/image", JPEG)
        assert json.loads(rec.last(f"{BASE}/visitor").payload)["visit"] == 7
        say("Tony")  # a plain name just after the visitor changed: maybe meant for the last one
        assert rec.wait_payload(state, "refused: a new visitor (7) came 0 s ago: look again and resend")  # fmt: skip
        say(json.dumps({"visit": 6, "name": "Tony"}))  # a notification about visitor 6
        assert rec.wait_payload(state, "naming visitor 6 as Tony")  # that one, not the last
        assert calls[-1] == (6, "Tony")
        for bad, why in (
            (b"\xff\xfeTony", "not UTF-8 text"),
            (b'{"visit": 7}', 'JSON that is not {"visit": N, "name": "..."}'),
            (b'{"visit": true, "name": "Tony"}', 'JSON that is not {"visit": N, "name": "..."}'),
            (b"To\x07ny", "control characters in the name"),
            (b"x" * 65, "a name of 1-64 characters"),
        ):
            say(bad)
            assert rec.wait_payload(state, f"refused: {why}"), bad
        say(json.dumps({"visit": 7, "name": " Tony "}))  # what the text entity's template sends
        assert rec.wait_payload(state, "naming visitor 7 as Tony")
        sink.visitor_done(7, "Tony", None)  # VisitorActions' result
        assert rec.wait_payload(state, "named visitor 7 as Tony")
        monkeypatch.setattr(edge.mqtt.commands, "CHANGED_S", 0.0)  # the visitor is old news
        say("Ann")
        assert rec.wait_payload(state, "naming visitor 7 as Ann")
        sink.visitor_done(7, "Ann", "Ann: already a person in the model")
        assert rec.wait_payload(state, "refused: Ann: already a person in the model")
        say("PRESS", f"{BASE}/visitor/ignore")
        assert rec.wait_payload(state, "ignoring visitor 7")
        sink.close()
    assert calls == [(6, "Tony"), (7, "Tony"), (7, "Ann"), (7, None)]
    said = [r.getMessage() for r in mqtt_records(caplog)]
    assert any("ignored: no unknown visitor yet" in m for m in said), said
    assert any("ignored the retained 'Tony'" in m for m in said), said
    assert any("ignored: a name of 1-64 characters" in m for m in said), said
    assert sum("/visitor/name/set ignored: " in m for m in said) == 7, said  # one line each
    infos = [r.getMessage() for r in mqtt_records(caplog, logging.INFO)]
    assert "MQTT: naming visitor 7 as 'Tony'" in infos and "MQTT: ignoring visitor 7" in infos, (
        infos
    )


def test_entity_ids_stay_with_their_people_across_retrains(broker, tmp_path):
    model = tmp_path / "faces.tflite"
    model.write_bytes(b"")  # the slug map lives beside the model; its content is not read here
    cfg = make_cfg(broker, **{"recognize.model": str(model)})

    def slugs(labels: list[str]) -> dict[str, str]:
        book = with_new_people(load_slug_book(slug_book_path(model)), labels)
        slug_book_path(model).write_text(json.dumps(book))  # as the library does
        with Recorder(broker, ["homeassistant/binary_sensor/pi/#"]) as rec:
            sink = MqttSink(cfg)
            sink.start(labels, read_slugs(model, labels))
            assert rec.wait_for(
                lambda: sum("person_" in m.topic for m in rec.messages) >= len(labels)
            )
            sink.close()
        last = {m.topic: m.payload for m in rec.messages if "person_" in m.topic}
        return {
            json.loads(payload)["name"]: topic.split("/")[-2].removeprefix("person_")
            for topic, payload in last.items()
            if payload  # an empty retained config: the entity was removed
        }

    assert slugs(["José"]) == {"José": "jose"}
    # sorted order would now give "Jose" the slug jose and José jose_2: the map keeps José's
    assert slugs(["Jose", "José"]) == {"Jose": "jose_2", "José": "jose"}
    assert slugs(["Jose"]) == {"Jose": "jose_2"}  # forgotten José's slug is not handed on
    assert json.loads((tmp_path / "faces.slugs.json").read_text()) == {
        "José": "jose",
        "Jose": "jose_2",
    }
    assert (tmp_path / "faces.slugs.json").stat().st_mode == model.stat().st_mode  # as the model


def test_read_slugs_writes_nothing_and_gives_new_people_unused_slugs(tmp_path):
    model = tmp_path / "faces.tflite"
    assert read_slugs(model, ["José", "Jose"]) == {"José": "jose", "Jose": "jose_2"}
    assert not (tmp_path / "faces.slugs.json").exists()
    (tmp_path / "faces.slugs.json").write_text(json.dumps({"Jose": "jose", "Ann": "ann"}))
    before = (tmp_path / "faces.slugs.json").read_bytes()
    # José is new: not Jose's slug, nor forgotten Ann's
    assert read_slugs(model, ["José", "Jose", "ann"]) == {
        "José": "jose_2",
        "Jose": "jose",
        "ann": "ann_2",
    }
    assert (tmp_path / "faces.slugs.json").read_bytes() == before


def test_visitor_actions_report_each_result(tmp_path):
    """VisitorActions calls on_result(visit, name, error) when a request is done (here the
    real library refusing: there is no face model)."""
    from edge.visitor_actions import VisitorActions

    cfg = load_config(None, {"unknown_faces.dir": str(tmp_path / "unknown")})
    done = threading.Event()
    results: list[tuple] = []
    actions = VisitorActions(cfg, lambda *r: (results.append(r), done.set()))
    try:
        assert actions.request(99, "Tony")
        assert done.wait(30)
    finally:
        actions.close()
    [(visit, name, error)] = results
    assert (visit, name) == (99, "Tony") and "no face model yet" in error
