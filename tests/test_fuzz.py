"""Property-based fuzzing (Hypothesis) of what users and neighbours type: person names
(folders, enroll) and MQTT payloads on the topics edge subscribes to."""

from __future__ import annotations

import json
import logging
import tempfile
import unicodedata
from pathlib import Path

import paho.mqtt.client as paho
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convert.dataset import UNKNOWN_DIR, crawl
from convert.enroll import check_name
from edge.config import load_config
from edge.errors import UserError
from edge.mqtt import SHOWN_CHARS, MqttSink
from edge.slugs import person_slugs, slugify

NODE = "pi"
BASE = f"edge/{NODE}"

# Names as people type them: any text, plus the troublesome neighbours of real names.
names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["alice", "Alice", "ALICE", "unknown", "Unknown", " Bob", "Bob ", "..hidden",
                     ".x", "_unknown", "Zoë", "Zoe\u0308", "a\nb", "tab\tname", "\u00a0nbsp"]),
)  # fmt: skip


def _folder_name(name: str) -> bool:
    """Whether Linux can hold a folder of this name."""
    return bool(name) and name not in {".", ".."} and "/" not in name and "\0" not in name


@given(st.lists(names, max_size=8))
def test_slugs_are_topic_safe_and_unique(labels):
    slugs = person_slugs(labels)
    assert len(set(slugs.values())) == len(slugs)
    for slug in slugs.values():
        assert slug and set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
    for label in labels:
        assert slugify(label) == slugify(label)  # stable across runs


@given(names)
def test_enroll_names_are_clean_or_one_line_errors(name):
    try:
        clean = check_name(name)
    except UserError as exc:
        assert "\n" not in str(exc) and "\r" not in str(exc)
        return
    assert clean == clean.strip() and clean.isprintable() and not clean.startswith(".")
    assert clean.lower() != "unknown" and clean != UNKNOWN_DIR and "/" not in clean


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(names.filter(_folder_name), max_size=6, unique=True))
def test_every_person_folder_is_a_clean_label_or_a_reason(folders):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dataset"
        root.mkdir()
        for name in folders:
            (root / name).mkdir()
            (root / name / "1.jpg").write_bytes(b"x")
        found, skipped = crawl(root)
        labels = {label for _, label in found if label is not None}
        said = {path.name for path, _ in skipped}
        for name in folders:
            path_label = name if name != UNKNOWN_DIR else None
            used = any(p.parent.name == name for p, _ in found)
            if used:
                assert path_label is None or path_label in labels
            elif name != ".cache":
                assert name in said, f"{name!r} left out without a word"
        for label in labels:
            assert label == label.strip() and label.isprintable()
            assert label.lower() != "unknown" and not label.startswith(".")
        same = {unicodedata.normalize("NFKC", label).casefold() for label in labels}
        assert len(same) == len(labels), "two labels that read alike"


def _message(topic: str, payload: bytes, retain: bool = False) -> paho.MQTTMessage:
    msg = paho.MQTTMessage(topic=topic.encode())
    msg.payload, msg.retain = payload, retain
    return msg


def _sink() -> MqttSink:
    """A sink that is never started: messages are handled and queued, nothing is sent."""
    return MqttSink(load_config(None, {"mqtt.host": "127.0.0.1", "mqtt.device_id": NODE}))


payloads = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=3000).map(str.encode),
    st.sampled_from([b"ON", b"off", b" On \n", b"", b"\xff\xfe", b"ON" * 1000]),
)


@settings(max_examples=200, deadline=None)
@given(payload=payloads, retain=st.booleans())
def test_switch_payloads(payload, retain):
    sink = _sink()
    logger = logging.getLogger("edge.mqtt")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        sink._on_message(None, None, _message(f"{BASE}/enabled/set", payload, retain))
    finally:
        logger.removeHandler(handler)
    word = payload.decode("utf-8", "replace").strip().upper()
    if retain or word not in ("ON", "OFF"):
        assert sink.enabled is True
    else:
        assert sink.enabled is (word == "ON")
    for record in records:
        assert len(record.getMessage()) < SHOWN_CHARS * 2 + 200  # bounded, whatever was sent


configs = st.one_of(
    payloads,
    st.fixed_dictionaries(
        {},
        optional={
            "unique_id": st.one_of(
                st.text(max_size=20), st.sampled_from([f"edge_faces_{NODE}_x", "esphome_x"])
            ),
            "device": st.one_of(
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                st.fixed_dictionaries(
                    {
                        "name": st.one_of(
                            st.text(max_size=20),
                            st.sampled_from(
                                [
                                    f"edge-faces {NODE}",
                                    "edge-faces Pi",
                                    "edge-faces a\nb",
                                    "ESPHome",
                                ]
                            ),
                        )
                    }  # fmt: skip
                ),
            ),
        },
    ).map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"[]", b"null", b"3", b'"text"', b'{"unique_id": 5}']),
)


@settings(max_examples=300, deadline=None)
@given(payload=configs, component=st.sampled_from(["sensor", "binary_sensor", "switch"]))
def test_discovery_configs_of_neighbours(payload, component):
    """Only edge's own configs are removed; only another edge-faces device's is a clash."""
    sink = _sink()
    topic = f"homeassistant/{component}/{NODE}/someone/config"
    sink._on_message(None, None, _message(topic, payload, retain=True))
    removed = any(m.topic == topic and m.payload == b"" for g in sink.transport._queue for m in g)
    try:
        cfg = json.loads(payload)
    except ValueError:
        cfg = None
    ours_by_id = isinstance(cfg, dict) and str(cfg.get("unique_id", "")).startswith(
        f"edge_faces_{NODE}_"
    )
    device = cfg.get("device") if ours_by_id else None
    owner = device.get("name") if isinstance(device, dict) else None
    edge_faces = isinstance(owner, str) and owner.startswith("edge-faces ")
    mine = edge_faces and owner == f"edge-faces {NODE}"
    assert removed == mine
    assert (sink.failure is not None) == (edge_faces and not mine)
    if sink.failure:
        assert "\n" not in sink.failure


@settings(max_examples=100, deadline=None)
@given(payload=payloads)
def test_home_assistant_status_payloads(payload):
    sink = _sink()
    sink._on_message(None, None, _message("homeassistant/status", payload))
    assert sink.transport._rediscover is (payload.decode("utf-8", "replace").strip() == "online")


@settings(max_examples=300, deadline=None)
@given(payload=payloads)
def test_visitor_name_payloads(payload):
    """Whatever arrives on the name_visitor topic: a visitor is named only with a name of
    1-64 characters and no control characters, else one bounded log line."""
    import unicodedata

    from edge.mqtt.commands import parse_name

    parsed = parse_name(payload)
    if isinstance(parsed, str):
        assert parsed and len(parsed) < 80
    else:
        visit, name = parsed
        assert 0 < len(name) <= 64 and name == name.strip()
        assert not any(unicodedata.category(c)[0] == "C" for c in name)
        assert visit is None or type(visit) is int
    sink = _sink()
    calls: list = []
    sink.visitor_handler = lambda visit, name: calls.append((visit, name)) or True
    sink.event({"type": "unknown", "name": None, "track": 1, "visit": 5, "time": 0.0})
    logger = logging.getLogger("edge.mqtt")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        sink._on_message(None, None, _message(f"{BASE}/visitor/name/set", payload))
    finally:
        logger.removeHandler(handler)
    # named only with visitor 5's id: without one a visitor new 0 s ago is not named
    named = not isinstance(parsed, str) and parsed[0] == 5
    assert calls == ([(5, parsed[1])] if named else [])
    assert len(records) == 1 and len(records[0].getMessage()) < SHOWN_CHARS * 2 + 200
