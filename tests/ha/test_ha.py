"""A real Home Assistant 2024.3.3 discovers edge over a real Mosquitto.

Slow and outside the default run (marker `ha`): `tests/ha/run.sh` sets up .venv-ha and runs it.
Home Assistant is onboarded and given the MQTT integration over its REST API, then
`python -m edge --sink mqtt` runs on a doorbell clip; /api/states must show the person and
unknown entities changing state, and the image entity must serve a JPEG.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import load_config
from edge.mqtt import MqttSink
from edge.slugs import person_slugs, slugify
from tests.broker import Broker, free_port, retained
from tests.conftest import ROOT
from tests.paths import copy_model

pytestmark = pytest.mark.ha

HASS = ROOT / ".venv-ha" / "bin" / "hass"
DEVICE = "doorpi"
USERS = {"edge": "edge-Pa55", "hass": "hass-Pa55"}


class Api:
    """Minimal Home Assistant REST client."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token: str | None = None

    def call(self, method: str, path: str, body=None, form: dict | None = None, raw=False):
        headers = {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
            if raw:
                return resp.headers.get("Content-Type", ""), payload
            return json.loads(payload) if payload else None

    def wait_up(self, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"hass exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                self.call("GET", "/api/onboarding")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        pytest.fail(f"hass did not answer within {timeout}s:\n{log.read_text()[-3000:]}")

    def onboard(self) -> None:
        """Create the owner over the onboarding API and log in (code -> access token)."""
        client_id = self.base + "/"
        user = {
            "client_id": client_id,
            "name": "Test Owner",
            "username": "owner",
            "password": "owner-Pa55-word",
            "language": "en",
        }
        code = self.call("POST", "/api/onboarding/users", user)["auth_code"]
        tokens = self.call(
            "POST",
            "/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": client_id},
        )
        self.token = tokens["access_token"]

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self.call("GET", "/api/states")}


def _hass_config(folder: Path, port: int, extra: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration.yaml").write_text(
        f"""homeassistant:
  name: edge-faces test
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
onboarding:
logger:
  default: warning
"""
        + extra
    )


@contextlib.contextmanager
def running_hass(tmp_path: Path, broker: Broker, extra: str = "") -> Iterator[tuple[Api, Path]]:
    """A Home Assistant, onboarded, with the MQTT integration on `broker`; stopped after.
    `extra`: more of configuration.yaml (its folder: tmp_path / "hass")."""
    if not HASS.exists():
        pytest.skip("no .venv-ha: run tests/ha/setup.sh (or tests/ha/run.sh)")
    port = free_port()
    _hass_config(tmp_path / "hass", port, extra)
    hass_log = tmp_path / "hass.log"
    with open(hass_log, "w") as out:
        hass = subprocess.Popen(
            [str(HASS), "-c", str(tmp_path / "hass"), "--skip-pip"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        api = Api(port)
        api.wait_up(hass, hass_log)
        api.onboard()
        flow = api.call("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow.get("step_id") == "broker", flow
        entry = api.call(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {
                "broker": broker.host,
                "port": broker.port,
                "username": "hass",
                "password": USERS["hass"],
            },
        )
        assert entry.get("type") == "create_entry", entry
        yield api, hass_log
    finally:
        hass.send_signal(signal.SIGTERM)
        try:
            hass.wait(60)
        except subprocess.TimeoutExpired:
            hass.kill()
            hass.wait()


def _edge_config(tmp_path: Path, broker: Broker, head: str) -> Path:
    """edge.yaml: `head` (YAML of the other sections) and the MQTT login of user edge."""
    (tmp_path / "edge.pw").write_text(USERS["edge"] + "\n")
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        head + f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n  username: edge\n"
        f"  password_file: {tmp_path / 'edge.pw'}\n  device_id: {DEVICE}\n"
    )
    return cfg


@pytest.fixture
def clip(data_dir: Path, tmp_path: Path) -> Path:
    from tests.doorbell import make_clip

    make_clip(data_dir, tmp_path / "clip", visits=3, seed=3)
    return tmp_path / "clip" / "clip.mp4"


def test_home_assistant_discovers_edge(tmp_path, clip, trained_model, capsys):
    if not HASS.exists():
        pytest.skip("no .venv-ha: run tests/ha/setup.sh (or tests/ha/run.sh)")
    labels = json.loads(trained_model.with_suffix(".json").read_text())["labels"]
    with (
        Broker(tmp_path / "broker", users=USERS) as broker,
        running_hass(tmp_path, broker) as (
            api,
            hass_log,
        ),
    ):
        edge_proc = None
        try:
            cfg = _edge_config(
                tmp_path,
                broker,
                f"stats_interval_s: 2\nrecognize:\n  model: {trained_model}\n"
                "unknown_faces:\n  enabled: false\n",
            )
            # Entities appear by themselves: discovery alone (no video yet) creates them, so
            # Home Assistant listens before the first (not retained) event of the run.
            sink = MqttSink(load_config(cfg))
            sink.start(labels)
            switch = f"switch.{DEVICE}_enabled"
            deadline = time.monotonic() + 60
            while api.states().get(switch, {}).get("state") != "on":
                assert time.monotonic() < deadline, f"no {switch}:\n{hass_log.read_text()[-3000:]}"
                time.sleep(0.3)
            sink.close()
            edge_log = tmp_path / "edge.log"
            with open(edge_log, "w") as err:
                edge_proc = subprocess.Popen(
                    [sys.executable, "-m", "edge", "--config", str(cfg), "--source", str(clip)]
                    + ["--realtime"],  # paced like a live camera: ~28 s
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )

            # Watch /api/states while edge runs: every state each entity of the device takes.
            seen: dict[str, list[str]] = {}
            event_types: list[str] = []
            image: tuple[str, bytes] | None = None
            switched = False
            deadline = time.monotonic() + 240
            while edge_proc.poll() is None and time.monotonic() < deadline:
                for eid, st in api.states().items():
                    if f"{DEVICE}_" not in eid:
                        continue
                    history = seen.setdefault(eid, [])
                    if not history or history[-1] != st["state"]:
                        history.append(st["state"])
                        if eid.startswith("event.") and st["attributes"].get("event_type"):
                            event_types.append(st["attributes"]["event_type"])
                    token = st["attributes"].get("access_token")
                    fresh = st["state"] not in ("unknown", "unavailable")
                    if eid.startswith("image.") and image is None and token and fresh:
                        image = api.call("GET", f"/api/image_proxy/{eid}?token={token}", raw=True)
                if (
                    not switched
                    and image
                    and "on" in seen.get(f"binary_sensor.{DEVICE}_unknown", [])
                ):
                    # The switch, from Home Assistant's side: recognition off for the rest.
                    api.call(
                        "POST",
                        "/api/services/switch/turn_off",
                        {"entity_id": f"switch.{DEVICE}_enabled"},
                    )
                    switched = True
                time.sleep(0.25)
            assert edge_proc.poll() == 0, edge_log.read_text()[-3000:]
            # edge said `offline` as it exited; Home Assistant may take a moment to show it
            deadline = time.monotonic() + 15
            while True:
                final = api.states()
                mine = {e: st["state"] for e, st in final.items() if f"{DEVICE}_" in e}
                for eid, state in mine.items():
                    if seen.setdefault(eid, [])[-1:] != [state]:
                        seen[eid].append(state)
                if all(v == "unavailable" for v in mine.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
        finally:
            if edge_proc is not None and edge_proc.poll() is None:
                edge_proc.kill()
                edge_proc.wait()
        held = retained(broker, f"edge/{DEVICE}/#", 0.5, username="hass", password=USERS["hass"])

    with capsys.disabled():
        print("\nHome Assistant entities of the device and the states they took:")
        for eid in sorted(seen):
            print(f"  {eid}: {' -> '.join(seen[eid])}")
        print(f"  event types: {event_types}")
        if image:
            print(f"  image: {image[0]}, {len(image[1])} bytes")

    people = [f"binary_sensor.{DEVICE}_person_{slugify(p)}" for p in labels]
    for eid in people:
        assert eid in seen, f"{eid} missing; entities: {sorted(seen)}"
    # The clip shows Ariel_Sharon, then Arnold_Schwarzenegger, then a stranger.
    assert "on" in seen[f"binary_sensor.{DEVICE}_person_ariel_sharon"]
    assert "on" in seen[f"binary_sensor.{DEVICE}_unknown"]
    assert seen[f"binary_sensor.{DEVICE}_person_ariel_sharon"][-2:] == ["off", "unavailable"]
    assert event_types[:1] == ["recognized"] and "unknown" in event_types
    assert "Ariel_Sharon" in seen[f"sensor.{DEVICE}_last_person"]
    assert "off" in seen[f"switch.{DEVICE}_enabled"]
    assert "recognition disabled over MQTT" in edge_log.read_text()
    assert image is not None, "the image entity never held a snapshot"
    assert image[0].startswith("image/jpeg") and image[1][:2] == b"\xff\xd8"
    assert held[f"edge/{DEVICE}/snapshot"][:2] == b"\xff\xd8"
    # Home Assistant took every payload and template without complaint.
    errors = [
        line
        for line in hass_log.read_text().splitlines()
        if ("ERROR" in line or "WARNING" in line) and "mqtt" in line
    ]
    assert not errors, "\n".join(errors)
    # After edge's clean exit everything of the device shows unavailable (status offline).
    assert all(
        final[e]["state"] == "unavailable" for e in final if e.split(".")[1].startswith(DEVICE)
    )


def test_discovery_passes_home_assistant_schemas(tmp_path, monkeypatch):
    """Every discovery payload (CPU temperature included) validated by HA's own schemas."""
    import edge.mqtt.presence

    if not HASS.exists():
        pytest.skip("no .venv-ha: run tests/ha/setup.sh (or tests/ha/run.sh)")
    zone = tmp_path / "thermal" / "thermal_zone0"  # the layout of a Pi's /sys/class/thermal
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    monkeypatch.setattr(edge.mqtt.presence, "THERMAL", tmp_path / "thermal")
    sink = MqttSink(load_config(None, {"mqtt.host": "127.0.0.1", "mqtt.device_id": DEVICE}))
    sink.entities.people(person_slugs(["Alice", "Zoë B"]))
    payloads = tmp_path / "discovery.json"
    payloads.write_text(json.dumps(sink.discovery()))
    check = """
import importlib, json, sys
bad = []
for topic, payload in json.load(open(sys.argv[1])).items():
    schema = importlib.import_module("homeassistant.components.mqtt." + topic.split("/")[1])
    try:
        schema.DISCOVERY_SCHEMA(payload)
    except Exception as exc:
        bad.append(f"{topic}: {exc}")
print(json.dumps(bad))
"""
    out = subprocess.run(
        [str(HASS.parent / "python"), "-c", check, str(payloads)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == []
    assert "homeassistant/sensor/doorpi/cpu_temperature/config" in sink.discovery()


def _returning_stranger_seed(data_dir: Path, visits: int = 5) -> int:
    """A doorbell-clip seed whose one stranger comes twice, in two photos, 3 visits apart."""
    from tests.doorbell import plan_visits

    for seed in range(100):
        came = [
            (i, v) for i, v in enumerate(plan_visits(data_dir, visits, seed + 1)) if not v["known"]
        ]
        if (
            len(came) == 2
            and came[0][1]["person"] == came[1][1]["person"]
            and came[0][1]["photo"] != came[1][1]["photo"]
            and came[1][0] - came[0][0] >= 3
        ):
            return seed
    pytest.fail("no clip seed with a returning stranger")


def test_home_assistant_names_a_visitor_who_is_then_recognized(
    tmp_path, data_dir, trained_model, capsys
):
    """Set the "name the last visitor" text entity over Home Assistant's REST API during a
    live run: the visitor's presence sensor appears and turns on at their next visit."""

    from tests.doorbell import make_clip

    timeline = make_clip(
        data_dir, tmp_path / "clip", visits=5, seed=_returning_stranger_seed(data_dir)
    )
    stranger = next(v["person"] for v in timeline["visits"] if not v["known"])
    models = tmp_path / "models"
    copy_model(trained_model, models)
    with (
        Broker(tmp_path / "broker", users=USERS) as broker,
        running_hass(tmp_path, broker) as (
            api,
            hass_log,
        ),
    ):
        cfg = _edge_config(
            tmp_path,
            broker,
            f"recognize:\n  model: {models / 'faces.tflite'}\n  watch_s: 0.5\n"
            f"unknown_faces:\n  dir: {tmp_path / 'unknown'}\n"
            f"enroll:\n  dataset: {tmp_path / 'dataset'}\n",
        )
        edge_log = tmp_path / "edge.log"
        with open(edge_log, "w") as err:
            edge_proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "--config", str(cfg), "--realtime", "--source",
                 str(tmp_path / "clip" / "clip.mp4")],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        tony = f"binary_sensor.{DEVICE}_person_tony"
        text = f"text.{DEVICE}_name_visitor"
        named_at = None
        history: list[str] = []
        text_states: list[str] = []  # what the text entity said was done
        try:
            deadline = time.monotonic() + 240
            while edge_proc.poll() is None and time.monotonic() < deadline:
                states = api.states()
                unknown = states.get(f"binary_sensor.{DEVICE}_unknown", {}).get("state")
                if named_at is None and unknown == "on" and text in states:
                    api.call("POST", "/api/services/text/set_value",
                             {"entity_id": text, "value": "Tony"})  # fmt: skip
                    named_at = time.monotonic()
                state = states.get(tony, {}).get("state")
                if state and (not history or history[-1] != state):
                    history.append(state)
                said = states.get(text, {}).get("state")
                if said and (not text_states or text_states[-1] != said):
                    text_states.append(said)
                time.sleep(0.25)
            assert edge_proc.wait(60) == 0, edge_log.read_text()[-3000:]
        finally:
            if edge_proc.poll() is None:
                edge_proc.kill()
                edge_proc.wait()
    log = edge_log.read_text()
    with capsys.disabled():
        print(f"\n{tony} ({stranger}, named from Home Assistant): {' -> '.join(history)}")
    assert named_at is not None, "the unknown sensor never turned on"
    assert "MQTT: naming visitor" in log and "named Tony" in log, log[-3000:]
    assert "(8 people in the model)" in log, log[-3000:]
    # the template sent the visit shown with the name: accepted at once, and the state says so
    assert any(re.fullmatch(r"named visitor \d+ as Tony", t) for t in text_states), text_states
    assert "on" in history, f"{tony} never turned on: {history}\n{log[-3000:]}"
