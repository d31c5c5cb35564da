"""The web app in a real browser (Debian's Chromium through Selenium) on a running edge:
a stranger comes, is named on the Visitors page and is recognized at their next visit;
photos are uploaded and deleted on the People page. Screenshots of each page go to
$EDGE_WEB_SCREENSHOTS (docs/ keeps a set) or the test's folder."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from tests.conftest import ROOT
from tests.paths import copy_model
from tests.splits import heldout_photos, known, strangers, train_photos
from tests.test_enroll_device import _clips_sharing_one_stranger
from tests.test_first_model import backbone  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
GAP_S = 20  # between the two clips: time to name the stranger before they come again
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=412,900",
)  # fmt: skip


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (./setup.sh --test-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    b = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    b.set_page_load_timeout(30)
    yield b
    b.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(first: Path, second: Path, out: Path, gap_s: float) -> float:
    """first + gap_s of its last frame + second; returns where `second` starts, s."""
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 480))
    frames, last = 0, None
    for clip in (first, second):
        cap = cv2.VideoCapture(str(clip))
        while (ok := cap.read())[0]:
            last = ok[1]
            writer.write(last)
            frames += 1
        cap.release()
        if clip == first:
            offset = frames + gap_s * 15
            for _ in range(int(gap_s * 15)):
                writer.write(last)
            frames = offset
    writer.release()
    return offset / 15


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def _shots() -> Path | None:
    folder = os.environ.get("EDGE_WEB_SCREENSHOTS")
    return Path(folder) if folder else None


def _shot(browser, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(folder / f"web-{name}.png"))


def _message(browser) -> tuple[str, str]:
    """The message line's text and class, read in one script: no element handle to go stale
    while the page re-renders."""
    return tuple(
        browser.execute_script(
            "const m = document.getElementById('msg'); return m ? [m.textContent, m.className] : ['', ''];"
        )
    )


def _wait_message(browser, text: str, timeout: float = 60) -> None:
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, timeout, ignored_exceptions=(WebDriverException,)).until(
            lambda b: text in _message(b)[0] or "error" in _message(b)[1]
        )
    except TimeoutException:
        raise AssertionError(f"waited for {text!r}; the message says {_message(browser)}") from None
    msg, kind = _message(browser)
    assert "error" not in kind and text in msg, msg


def _wait(browser, script: str, timeout: float = 30):
    """Until the script returns something true (re-run on every poll: survives re-renders)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(script)
    )


def _fits(browser) -> bool:
    return browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )


def test_name_a_visitor_in_the_browser_then_they_are_recognized(
    browser, trained_model, data_dir, tmp_path
):
    from selenium.webdriver.common.by import By

    from tests.doorbell import make_clip

    faces = data_dir / "faces"
    shots = _shots() or tmp_path / "shots"
    models = tmp_path / "models"
    copy_model(trained_model, models)
    port = _free_port()
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"recognize:\n  model: {models / 'faces.tflite'}\n  watch_s: 0.2\n"
        f"enroll:\n  dataset: {tmp_path / 'dataset'}\n"
        f"unknown_faces:\n  dir: {tmp_path / 'unknown'}\n"
        f"history:\n  path: {tmp_path / 'history' / 'events.db'}\n"
        f"web:\n  port: {port}\n"
    )
    first, second, stranger = _clips_sharing_one_stranger(data_dir)
    make_clip(data_dir, tmp_path / "one", visits=4, seed=first)
    timeline = make_clip(data_dir, tmp_path / "two", visits=4, seed=second)
    clip = tmp_path / "both.mp4"
    offset_s = _join(tmp_path / "one" / "clip.mp4", tmp_path / "two" / "clip.mp4", clip, GAP_S)

    loop = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(config), "--source", str(clip),
         "--realtime", "--sink", "stdout"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    events: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(loop.stdout, events), daemon=True).start()
    seen = []
    try:
        while True:  # the stranger of the first clip comes and is reported unknown
            line = events.get(timeout=120)
            assert line is not None, "edge ended before an unknown visitor came"
            seen.append(json.loads(line))
            if seen[-1]["type"] == "unknown":
                break
        visit = seen[-1]["visit"]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # the web app gets the event just after stdout does
        while not (
            found := [
                e["why"]
                for e in _api(port, "/api/events?person=unknown")
                if e["visit"] == visit and e["type"] == "unknown"
            ]
        ):
            assert time.monotonic() < deadline, f"visitor {visit}'s event never reached the web app"
            time.sleep(0.1)
        (why,) = found
        assert {"votes", "probability", "min_probability", "distance", "max_distance"} <= set(why)

        browser.get(f"{base}/visitors")
        _wait(browser, f"return document.getElementById('visitor-{visit}')", timeout=60)
        card = browser.find_element(By.ID, f"visitor-{visit}")
        assert card.find_elements(By.CSS_SELECTOR, ".thumbs img")
        _shot(browser, shots, "visitors")
        card.find_element(By.NAME, "name").send_keys("Tony")
        card.find_element(By.CSS_SELECTOR, '[data-action="name-visitor"]').click()
        _wait_message(browser, "named Tony")
        assert not browser.find_elements(By.ID, f"visitor-{visit}")
        assert {"name": "Tony", "in_model": True}.items() <= next(
            p for p in _api(port, "/api/people") if p["name"] == "Tony"
        ).items()

        # People: a new person from two uploaded photos, then one of them deleted
        newcomer = strangers(faces)[-1] if strangers(faces)[-1] != stranger else strangers(faces)[0]
        photos = heldout_photos(faces, newcomer)[:2]
        browser.get(f"{base}/people")
        add = browser.find_element(By.ID, "add-person")
        add.find_element(By.NAME, "name").send_keys("Carol")
        add.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(map(str, photos)))  # fmt: skip
        _wait_message(browser, "2 photo(s) of Carol enrolled")  # choosing the photos uploads them
        kept = sorted(p.name for p in (tmp_path / "dataset" / "Carol").iterdir())
        assert kept == sorted(p.name for p in photos)
        card = browser.find_element(By.CSS_SELECTOR, '.person[data-person="Carol"]')
        browser.execute_script("arguments[0].scrollIntoView()", card)
        _shot(browser, shots, "people")
        card.find_element(By.TAG_NAME, "summary").click()  # the controls are folded
        card.find_element(By.CSS_SELECTOR, f'[data-file="{photos[0].name}"]').click()
        browser.switch_to.alert.accept()
        _wait_message(browser, f"{photos[0].name} deleted")
        assert sorted(p.name for p in (tmp_path / "dataset" / "Carol").iterdir()) == [
            photos[1].name
        ]
        carol = next(p for p in _api(port, "/api/people") if p["name"] == "Carol")
        assert carol["photos"] == [photos[1].name] and carol["in_model"]

        for page in ("events", "status", "live"):
            browser.get(f"{base}/{'' if page == 'live' else page}")
            _shot(browser, shots, page)
        assert browser.execute_script(
            "const i = document.querySelector('img.live'); return i.complete && i.naturalWidth"
        ) == 640  # fmt: skip

        while (line := events.get(timeout=300)) is not None:
            seen.append(json.loads(line))
        assert loop.wait(timeout=60) == 0
    finally:
        if loop.poll() is None:
            loop.terminate()
            loop.wait(timeout=30)

    (came,) = [v for v in timeline["visits"] if v["person"] == stranger]
    start, end = offset_s + came["first_frame"] / 15, offset_s + came["last_frame"] / 15 + 1
    named = [e for e in seen if e["type"] == "recognized" and e["name"] == "Tony"]
    # (named while still at the door in the first clip, a re-check may name them there too)
    assert [e for e in named if start <= e["source_time"] <= end], (named, start, end)
    assert all(e["source_time"] <= end for e in named), named


@pytest.mark.parametrize("width", [412, 1280])
def test_people_visitors_events_and_status_at_phone_and_desktop_width(
    browser, trained_model, data_dir, tmp_path, monkeypatch, width
):
    from selenium.webdriver.common.by import By

    from edge.config import load_config
    from edge.decide import Emitted
    from edge.unknowns import UnknownStore
    from edge.web.server import WebApp

    faces = data_dir / "faces"
    shots = _shots() or tmp_path / "shots"
    models = tmp_path / "models"
    copy_model(trained_model, models)
    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    cfg = load_config(None, {
        "web.port": 0, "web.password_env": "EDGE_TEST_WEB_PW",
        "recognize.model": str(models / "faces.tflite"),
        "unknown_faces.dir": str(tmp_path / "unknown"), "enroll.dataset": str(tmp_path / "dataset"),
        "history.enabled": False,  # the events this test hands the feed are the page's
    })  # fmt: skip
    long_name = "W" * 64  # the longest name: its card must not widen the page
    (tmp_path / "dataset" / long_name).mkdir(parents=True)
    shutil.copy2(data_dir / "no_face" / "coffee.png", tmp_path / "dataset" / long_name / "coffee.png")  # fmt: skip
    app = WebApp(cfg)
    base = f"http://127.0.0.1:{app.port}"
    browser.set_window_size(width, 900)
    try:
        assert browser.execute_script("return window.innerWidth") <= width
        # People: one step (choose the photos), the batch goes on past a photo with no face
        browser.get(f"{base}/people")
        newcomer = strangers(faces)[0]
        good = heldout_photos(faces, newcomer)[:2]
        bad = data_dir / "no_face" / "brick.png"
        add = browser.find_element(By.ID, "add-person")
        add.find_element(By.NAME, "name").send_keys("Carol" + "x" * 80)
        assert len(add.find_element(By.NAME, "name").get_attribute("value")) == 64
        add.find_element(By.NAME, "name").clear()
        add.find_element(By.NAME, "name").send_keys("Carol")
        add.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(map(str, [good[0], bad, good[1]])))  # fmt: skip
        _wait_message(browser, "2 photo(s) of Carol enrolled; not used: brick.png: no face found")
        assert sorted(p.name for p in (tmp_path / "dataset" / "Carol").iterdir()) == sorted(p.name for p in good)  # fmt: skip
        card = browser.find_element(By.CSS_SELECTOR, '.person[data-person="Carol"]')
        assert "Learned from only 2 faces" in card.text  # under 3: a warning
        assert card.find_element(By.CSS_SELECTOR, ".thumbs a img")  # each thumbnail opens full size
        assert not card.find_element(By.CSS_SELECTOR, '[data-action="forget"]').is_displayed()
        card.find_element(By.TAG_NAME, "summary").click()
        assert card.find_element(By.CSS_SELECTOR, '[data-action="forget"]').is_displayed()
        card.find_element(By.TAG_NAME, "summary").click()
        wide = browser.find_element(By.ID, f"person-{long_name}")
        assert "not used" in wide.text or "Not recognized yet" in wide.text
        assert _fits(browser), "the page is wider than the window"
        _shot(browser, shots, f"people-{width}")

        # Visitors: a new stranger appears without a reload
        browser.get(f"{base}/visitors")
        browser.execute_script("window.notReloaded = true")
        other = heldout_photos(faces, strangers(faces)[1])[0]
        crop = cv2.resize(cv2.imread(str(other))[62:188, 62:188], (112, 112))
        UnknownStore(cfg.unknown_faces).save_visit([(crop, None, 1.0)], visit=7, track=1, name="unknown", confidence=0.3)  # fmt: skip
        _wait(browser, "return document.getElementById('visitor-7')")
        assert browser.execute_script("return window.notReloaded === true")
        assert _fits(browser)
        _shot(browser, shots, f"visitors-{width}")

        # Events: new events appear without a reload, in plain words, linked to their visitor
        browser.get(f"{base}/events")
        browser.execute_script("window.notReloaded = true")
        snapshot = cv2.imencode(".jpg", crop)[1].tobytes()
        event = {"type": "unknown", "name": None, "confidence": 0.3, "track": 1, "visit": 7,
                 "box": [10, 10, 112, 112], "frame": 1, "source_time": 0.1, "time": time.time()}  # fmt: skip
        app.feed.event(Emitted(event), snapshot, None, cfg.recognize)
        app.feed.event(Emitted({**event, "type": "recognized", "name": "Carol", "visit": 8, "confidence": 0.9}), snapshot, None, cfg.recognize)  # fmt: skip
        _wait(browser, "return document.querySelectorAll('li.event').length == 2")
        assert browser.execute_script("return window.notReloaded === true")
        text = browser.find_element(By.ID, "events").text
        assert "Not recognized" in text and "Recognized: Carol" in text and "track" not in text
        assert browser.find_element(By.CSS_SELECTOR, 'a[href="/visitors#visitor-7"]')
        assert _fits(browser)
        _shot(browser, shots, f"events-{width}")

        # Status: who is at the camera, updated in place
        browser.get(f"{base}/status")
        app.feed.status({"frames_processed": 100, "stages": {"capture": {"median_ms": 66.0}, "detect": {"median_ms": 9.1}}})  # fmt: skip
        _wait(browser, "return document.getElementById('status').textContent.includes('Carol, visitor 7')")  # fmt: skip
        _shot(browser, shots, f"status-{width}")
    finally:
        app.close()


def test_the_first_person_added_in_the_browser_makes_the_first_model(
    browser, data_dir, tmp_path, monkeypatch, request
):
    """A Pi with no face model, only the int8 backbone: "Add a person" makes the model."""
    bb = request.getfixturevalue("backbone")  # tests/test_first_model.py's
    from selenium.webdriver.common.by import By

    from edge.config import load_config
    from edge.recognize import FaceModel
    from edge.web.server import WebApp

    faces = data_dir / "faces"
    models = tmp_path / "models"
    models.mkdir()
    for name in ("backbone.tflite", "backbone.json"):
        shutil.copy2(bb.with_name(name), models / name)
    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    cfg = load_config(None, {
        "web.port": 0, "web.password_env": "EDGE_TEST_WEB_PW",
        "recognize.model": str(models / "faces.tflite"),
        "unknown_faces.dir": str(tmp_path / "unknown"), "enroll.dataset": str(tmp_path / "dataset"),
        "history.enabled": False,
    })  # fmt: skip
    person = known(faces)[0]
    photos = train_photos(faces, person)[:3]
    app = WebApp(cfg)
    try:
        browser.get(f"http://127.0.0.1:{app.port}/people")
        add = browser.find_element(By.ID, "add-person")
        add.find_element(By.NAME, "name").send_keys("Ann")
        add.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(map(str, photos)))  # fmt: skip
        _wait_message(browser, "3 photo(s) of Ann enrolled")
        _wait(browser, """return document.querySelector('.person[data-person="Ann"]')""")
        ann = next(p for p in _api(app.port, "/api/people") if p["name"] == "Ann")
        assert ann["in_model"] and sorted(ann["photos"]) == sorted(p.name for p in photos)
    finally:
        app.close()
    model = FaceModel.load(models / "faces.tflite", cfg.recognize)
    assert model.labels == ["Ann"] and model.meta["made_from"]["backbone"] == "backbone.tflite"
    assert (models / "faces.tflite").read_bytes() == bb.read_bytes()
