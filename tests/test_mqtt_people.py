"""The loop hands the MQTT output the model's people and their slugs, read from the slug map
on disk at start and at every reload: a rename keeps the Home Assistant entity, a forget
retires it. Real model, real Mosquitto, the real `edge rename/forget` code."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from edge.config import load_config
from edge.library import FaceLibrary
from edge.outputs import build_outputs
from edge.pipeline import Loop
from edge.slugs import person_slugs, slug_book_path
from tests.broker import Broker, Recorder

CONFIGS = "homeassistant/binary_sensor/pi/#"


def _config_of(rec: Recorder, slug: str) -> dict | None:
    """The last discovery config of person `slug` (None: removed or never sent)."""
    last = rec.last(f"homeassistant/binary_sensor/pi/person_{slug}/config")
    return json.loads(last.payload) if last is not None and last.payload else None


@pytest.fixture
def broker(tmp_path: Path):
    with Broker(tmp_path / "broker") as b:
        yield b


def test_rename_keeps_the_entity_and_forget_retires_it(trained_model, broker, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for f in trained_model.parent.iterdir():
        if f.name != "faces.slugs.json":
            shutil.copy2(f, models / f.name)
    model = models / "faces.tflite"
    labels = json.loads((models / "faces.json").read_text())["labels"]
    slug_book_path(model).write_text(json.dumps(person_slugs(labels)))  # the library's first map
    cfg_file = tmp_path / "edge.yaml"
    cfg_file.write_text(
        f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n  device_id: pi\n"
        f"recognize:\n  model: {model}\nunknown_faces:\n  enabled: false\n"
        f"enroll:\n  dataset: {tmp_path / 'dataset'}\n"
    )
    cfg = load_config(cfg_file)
    args = argparse.Namespace(config=str(cfg_file), sink="mqtt", overrides={})
    with Recorder(broker, [CONFIGS]) as rec:
        loop = Loop(cfg, args, build_outputs(cfg, args))
        try:
            assert rec.wait_for(lambda: (_config_of(rec, "colin_powell") or {}).get("name") == "Colin_Powell")  # fmt: skip
            FaceLibrary(cfg).rename("Colin_Powell", "Colin_P")
            assert loop.reload()
            assert rec.wait_for(
                lambda: (_config_of(rec, "colin_powell") or {}).get("name") == "Colin_P"
            ), (  # fmt: skip
                "the renamed person's entity did not keep its topic with the new name"
            )
            FaceLibrary(cfg).forget("Hugo_Chavez")
            assert loop.reload()
            assert rec.wait_for(lambda: any(
                m.topic.endswith("/person_hugo_chavez/config") and not m.payload
                for m in rec.messages
            )), "the forgotten person's entity was not retired"  # fmt: skip
        finally:
            loop._shutdown()
    topics = {m.topic for m in rec.messages}
    assert not any("colin_p/" in t or "colin_p_" in t for t in topics), sorted(topics)
    emptied = [m.topic for m in rec.messages if not m.payload]
    assert emptied == ["homeassistant/binary_sensor/pi/person_hugo_chavez/config"], emptied
    assert _config_of(rec, "ariel_sharon")["name"] == "Ariel_Sharon"  # the others untouched
