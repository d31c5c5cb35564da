"""The household's face library (edge/share): records merge the same in any order, and two
libraries exchanging their records through the wire format end up with the same people."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import load_config
from edge.facestore import FaceStore
from edge.library import FaceLibrary
from edge.share.records import (
    NEVER,
    Person,
    Photo,
    RecordError,
    merge_all,
    message,
    read_message,
)
from edge.share.service import ShareOutput
from tests.broker import Broker, Recorder, retained
from tests.conftest import run_edge
from tests.paths import ROOT, copy_model
from tests.splits import photos, strangers


def _person(pid: str, name: str, *adds: tuple[str, int, str]) -> Person:
    emb = np.ones((4, 8), np.float32)
    return Person(pid, name, (1, "a"), NEVER, {k: Photo((v, d), k, emb) for k, v, d in adds})


def test_merge_is_order_free_and_keeps_both_sides_photos():
    a = _person("bob", "Bob", ("k1", 1, "front"), ("k2", 2, "front"))
    b = _person("bob", "Bob", ("k1", 1, "front"), ("k3", 2, "back"))
    b.removed["k2"] = (3, "back")
    c = Person("bob", "Robert", (4, "front"))
    orders = [(a, b, c), (c, b, a), (b, a, c), (a, a, b, c, c)]
    digests = {merge_all(*({"bob": x} for x in order))["bob"].digest() for order in orders}
    assert len(digests) == 1
    merged = merge_all({"bob": a}, {"bob": b}, {"bob": c})["bob"]
    assert merged.live() == ["k1", "k3"]  # k2 removed after it was added
    assert merged.name == "Robert"


def test_forget_hides_the_photos_it_saw_and_a_later_enrolment_brings_them_back():
    p = _person("eve", "Eve", ("k1", 1, "a"))
    p.forgot = (2, "b")
    assert p.live() == []
    p.photos["k2"] = Photo((3, "a"), "k2")
    assert p.live() == ["k2"]


def test_a_message_round_trips_and_a_bad_one_is_refused_in_one_line():
    p = _person("bob", "Bob", ("k1", 1, "front"))
    p.removed["k0"] = (1, "back")
    back, device, backbone = read_message(message(p, "front", "abc", "now"))
    assert (device, backbone) == ("front", "abc")
    assert back.digest() == p.digest()
    assert np.allclose(back.photos["k1"].emb, 1.0)
    for bad in (
        b"{",
        b'{"format": 1}',
        b'{"format": 1, "device": "x", "backbone": "y", "id": "a/b"}',
    ):
        with pytest.raises(RecordError) as err:
            read_message(bad)
        assert "\n" not in str(err.value)


@pytest.fixture
def two_pis(trained_model: Path, tmp_path: Path):
    """Two Pis (front, back) with copies of the 7-person test model, sharing on."""
    libs = []
    for device in ("front", "back"):
        root = tmp_path / device
        models = root / "models"
        copy_model(trained_model, models)
        config = root / "config.yaml"
        config.write_text(
            f"recognize:\n  model: {models / 'faces.tflite'}\n"
            f"enroll:\n  dataset: {root / 'dataset'}\n"
            f"unknown_faces:\n  dir: {root / 'unknown'}\n"
            f"history:\n  enabled: false\n"
            f"mqtt:\n  device_id: {device}\n"
            f"library:\n  share: true\n"
        )
        libs.append(FaceLibrary(load_config(config)))
    return libs


def _exchange(*libs: FaceLibrary) -> list[dict[str, Person]]:
    """Each library's records through the wire format, then each adopts all of them (twice:
    the second round must change nothing)."""
    wire: dict[str, Person] = {}
    for lib in libs:
        people, store = lib.adopt_household({})
        rows = {k: store.emb[i] for i, k in enumerate(store.keys)}
        for pid, p in people.items():
            for k in p.live():
                p.photos[k] = Photo(p.photos[k].at, p.photos[k].group, rows[k])
            got, _, _ = read_message(message(p, "x", "y", "now"))
            wire[pid] = wire[pid].merged(got) if pid in wire else got
    out = [lib.adopt_household(wire)[0] for lib in libs]
    gens = [json.loads(lib.model.with_suffix(".json").read_text())["generation"] for lib in libs]
    again = [lib.adopt_household(wire)[0] for lib in libs]
    assert gens == [
        json.loads(lib.model.with_suffix(".json").read_text())["generation"] for lib in libs
    ], "a second adoption of the same records wrote a generation"
    assert [{k: p.digest() for k, p in x.items()} for x in again] == [
        {k: p.digest() for k, p in x.items()} for x in out
    ]
    return out


def _store(lib: FaceLibrary) -> FaceStore:
    meta = json.loads(lib.model.with_suffix(".json").read_text())
    return FaceStore.load(lib.model.with_name(meta["store"]))


def test_two_libraries_converge_on_enrol_forget_rename_and_concurrent_namings(two_pis, data_dir):
    front, back = two_pis
    faces = data_dir / "faces"
    tony, jacques = strangers(faces)[:2]
    _exchange(front, back)  # both start from the same model: nothing to adopt
    assert front.labels() == back.labels()

    front.enroll("Tony", photos(faces, tony)[:4])
    _exchange(front, back)
    assert "Tony" in back.labels()
    assert _store(back).counts()["Tony"] == _store(front).counts()["Tony"] >= 3

    back.forget("Hugo_Chavez")
    _exchange(front, back)
    assert "Hugo_Chavez" not in front.labels()

    # the same stranger named on both Pis at once, from different photos: both sets kept
    front.enroll("Jacques", photos(faces, jacques)[:3])
    back.enroll("Jacques", photos(faces, jacques)[5:8])
    front.rename("Tony", "Tony B")
    _exchange(front, back)
    for lib in (front, back):
        counts = _store(lib).counts()
        assert counts["Jacques"] == 6, counts
        assert "Tony B" in lib.labels() and "Tony" not in lib.labels()
    assert front.labels() == back.labels() or sorted(front.labels()) == sorted(back.labels())
    slugs = [json.loads(lib.model.with_suffix(".slugs.json").read_text()) for lib in two_pis]
    assert slugs[0]["Tony B"] == slugs[1]["Tony B"] == "tony"  # the entity follows the rename


def _publish(broker: Broker, topic: str, payload: bytes, **login: str) -> None:
    """One retained message, QoS 1, from a client of its own (`login`: username, password)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    if login:
        client.username_pw_set(login["username"], login["password"])
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_the_documented_acl_keeps_the_faces_to_the_pis(tmp_path):
    text = (ROOT / "docs" / "household.md").read_text()
    acl = textwrap.dedent(text.split("```acl\n", 1)[1].split("```", 1)[0])
    users = {"front-door": "pw1", "back-door": "pw2", "homeassistant": "pw3"}
    broker = Broker(tmp_path / "broker", users=users)
    (tmp_path / "acl").write_text(acl)
    broker.conf.write_text(broker.conf.read_text() + f"acl_file {tmp_path / 'acl'}\n")
    with broker:
        pi = {"username": "front-door", "password": "pw1"}
        ha = {"username": "homeassistant", "password": "pw3"}
        _publish(broker, "edge/household/people/anna", b"faces", **pi)
        _publish(broker, "edge/household/people/eve", b"forged", **ha)
        _publish(broker, "edge/front-door/status", b"online", **pi)
        seen_by_pi = retained(broker, "#", 0.5, username="back-door", password="pw2")
        seen_by_ha = retained(broker, "#", 0.5, **ha)
    assert seen_by_pi.get("edge/household/people/anna") == b"faces"
    assert "edge/household/people/eve" not in seen_by_pi  # Home Assistant may not teach faces
    assert not [t for t in seen_by_ha if t.startswith("edge/household/")]
    assert seen_by_ha.get("edge/front-door/status") == b"online"


def test_a_pi_with_another_model_refuses_the_records_with_one_line(device, tmp_path, caplog):
    model, config = device
    with Broker(tmp_path / "broker") as broker:
        foreign = _person("zed", "Zed", ("k1", 1, "garage"))
        for pid in ("zed", "zoe"):
            foreign.id = pid
            _publish(
                broker, f"home/faces/people/{pid}", message(foreign, "garage", "0" * 64, "now")
            )
        cfg = load_config(
            config,
            {
                "mqtt.host": broker.host,
                "mqtt.port": broker.port,
                "mqtt.device_id": "front",
                "library.share": True,
                "library.share_topic": "home/faces",
            },
        )
        share = ShareOutput(cfg)
        rec = Recorder(broker, ["home/faces/devices/front/library"], persistent=False).start()
        try:
            with caplog.at_level(logging.INFO, logger="edge.share"):
                share.start([], {})
                assert rec.wait_for(lambda: rec.messages, 30), "no library state published"
        finally:
            share.close()
            rec.stop()
    refusals = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
    assert len(refusals) == 1, refusals
    assert "garage" in refusals[0] and "same faces.tflite" in refusals[0]
    assert "Zed" not in FaceLibrary(cfg).labels()
    state = json.loads(rec.messages[-1].payload)
    assert "zed" not in state["people"] and len(state["people"]) == 7


def test_share_without_a_broker_is_one_clear_error(device, tmp_path):
    model, config = device
    config.write_text(config.read_text() + "library:\n  share: true\n")
    proc = run_edge("--config", str(config), "--max-frames", "1", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {config}: library.share is true but mqtt.host is empty: set the broker"
    )


def test_shared_photos_reach_the_other_pis_dataset(two_pis, data_dir, tmp_path):
    from edge.hashing import file_hash
    from tests.household import wait

    front, back = two_pis
    tony = photos(data_dir / "faces", strangers(data_dir / "faces")[0])[:3]
    with Broker(tmp_path / "broker") as broker:
        outputs = []
        for lib in (front, back):
            cfg = load_config(
                lib.cfg.source_file,
                {"mqtt.host": broker.host, "mqtt.port": broker.port, "library.share_photos": True},
            )
            outputs.append(ShareOutput(cfg))
            outputs[-1].start([], {})
        try:
            front.enroll("Tony", tony)
            arrived = wait(lambda: len(back.photos_of("Tony")) == 3, 60)
        finally:
            for out in outputs:
                out.close()
    assert arrived is not None, back.labels()
    assert {file_hash(back.dataset / "Tony" / f) for f in back.photos_of("Tony")} == {
        file_hash(p) for p in tony
    }
    assert _store(back).counts()["Tony"] == 3


def test_one_name_under_two_ids_becomes_one_person_on_every_pi():
    from edge.share.adopt import materialize

    empty = FaceStore(["Ann"], np.zeros((1, 4, 8), np.float32), np.zeros(1, int), ["k0"], ["k0"])
    people = {
        "ann": _person("ann", "Ann", ("k0", 1, "front")),
        "bob": _person("bob", "Bob", ("k1", 2, "front")),
        "bob_2": _person("bob_2", "bob", ("k2", 2, "back")),  # named at once on the back door
    }
    a = materialize(people, empty, {"Ann": "ann"})
    b = materialize(dict(reversed(people.items())), empty, {"Ann": "ann"})
    assert a is not None and b is not None
    assert a.store.labels == b.store.labels == ["Ann", "Bob"]
    assert a.store.counts() == {"Ann": 1, "Bob": 2}
    assert a.slugs["Bob"] == b.slugs["Bob"] == "bob"
    assert any("are one person: merged" in n for n in a.notes)
