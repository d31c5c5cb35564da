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
from tests.splits import heldout_photos, strangers
from tests.test_enroll_device import _clips_sharing_one_stranger

pytestmark = pytest.mark.slow
GAP_S = 20  # between the two clips: time to name the stranger before they come again
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=420,900",
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


def _wait_message(browser, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(
        lambda b: (
            text in b.find_element(By.ID, "msg").text
            or "error" in (b.find_element(By.ID, "msg").get_attribute("class") or "")
        )
    )
    msg = browser.find_element(By.ID, "msg")
    assert "error" not in (msg.get_attribute("class") or ""), msg.text


def test_name_a_visitor_in_the_browser_then_they_are_recognized(
    browser, trained_model, data_dir, tmp_path
):
    from selenium.webdriver.common.by import By

    from tests.doorbell import make_clip

    faces = data_dir / "faces"
    shots = _shots() or tmp_path / "shots"
    models = tmp_path / "models"
    models.mkdir()
    meta = json.loads(trained_model.with_suffix(".json").read_text())
    for name in (trained_model.name, trained_model.with_suffix(".json").name, meta["store"]):
        shutil.copy2(trained_model.with_name(name), models / name)
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
        deadline = time.monotonic() + 10  # the history commits within a second
        while not (why := [e["why"] for e in _api(port, "/api/events?person=unknown")
                           if e["visit"] == visit and e["type"] == "unknown"]):  # fmt: skip
            assert time.monotonic() < deadline, "the unknown event never reached the Events page"
            time.sleep(0.1)
        (why,) = why
        assert {"votes", "probability", "min_probability", "distance", "max_distance"} <= set(why)

        browser.get(f"{base}/visitors")
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
        add = browser.find_element(By.XPATH, "//h2[text()='Add a person']/..")
        add.find_element(By.NAME, "name").send_keys("Carol")
        add.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(map(str, photos)))  # fmt: skip
        add.find_element(By.CSS_SELECTOR, '[data-action="upload"]').click()
        _wait_message(browser, "2 photo(s) of Carol enrolled")
        kept = sorted(p.name for p in (tmp_path / "dataset" / "Carol").iterdir())
        assert kept == sorted(p.name for p in photos)
        card = browser.find_element(By.CSS_SELECTOR, '.person[data-person="Carol"]')
        browser.execute_script("arguments[0].scrollIntoView()", card)
        _shot(browser, shots, "people")
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
