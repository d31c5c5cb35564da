"""Two Pis of one household as real processes: each `python -m edge` with its own device id,
clip, web app and copy of the test model, sharing its library through one Mosquitto.

Used by tests/test_household.py and bench/share.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests import splits
from tests.broker import Broker, Recorder, free_port, retained
from tests.doorbell import FPS, HEIGHT, WIDTH, _background, _paste, _positions
from tests.paths import ROOT, copy_model
from tests.splits import photos

SHARE_TOPIC = "home/faces"


def make_visits_clip(data_dir: Path, out: Path, visits: list[tuple[str, float]], length_s: float,
                     seed: int = 0) -> Path:  # fmt: skip
    """out (an .mp4) with `visits` (person, start second), one person at a time, each a
    different held-out photo of theirs (strangers: any of their photos)."""
    rng = random.Random(seed)
    faces = data_dir / "faces"
    background = _background(data_dir, rng)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OSError(f"{out}: cannot write the clip")
    noise = np.random.default_rng(seed).normal(0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.int16)
    frame_no, used = 0, {}

    def write(frame: np.ndarray) -> None:
        nonlocal frame_no
        writer.write(np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8))
        frame_no += 1

    for person, start in sorted(visits, key=lambda v: v[1]):
        while frame_no < round(start * FPS):
            write(background.copy())
        pool = splits.heldout_photos(faces, person) or splits.photos(faces, person)
        if person in splits.strangers(faces):
            pool = splits.photos(faces, person)
        photo = cv2.imread(str(pool[used.get(person, 0) % len(pool)]), cv2.IMREAD_COLOR)
        used[person] = used.get(person, 0) + 1
        v = {"stay_s": 2.5, "size": 300, "cx": WIDTH / 2, "cy": HEIGHT * 0.48,
             "from_left": rng.random() < 0.5}  # fmt: skip
        for cx, cy, size in _positions(v):
            frame = background.copy()
            _paste(frame, photo, cx, cy, size)
            write(frame)
    while frame_no < round(length_s * FPS):
        write(background.copy())
    writer.release()
    return out


class Pi:
    """One Pi: its folder, config, model copy and `python -m edge` process."""

    def __init__(self, root: Path, device: str, model: Path, broker: Broker, clip: Path) -> None:
        self.root, self.device, self.clip = root, device, clip
        models = root / "models"
        self.model = copy_model(model, models)
        self.port = free_port()
        self.config = root / "config.yaml"
        self.config.write_text(
            f"recognize:\n  model: {self.model}\n"
            f"enroll:\n  dataset: {root / 'dataset'}\n"
            f"unknown_faces:\n  dir: {root / 'unknown'}\n"
            f"history:\n  path: {root / 'history' / 'events.db'}\n"
            f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n  device_id: {device}\n"
            f"  reconnect_max_s: 2\n  tracker_away_s: 0\n"
            f"web:\n  port: {self.port}\n"
            f"library:\n  share: true\n  share_topic: {SHARE_TOPIC}\n"
        )
        self.proc: subprocess.Popen | None = None
        self.log = root / "edge.log"
        self.started = 0.0

    def start(self) -> Pi:
        """Start playing the clip at camera pace, events to MQTT."""
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge",
                    "--config",
                    str(self.config),
                    "--source",
                    str(self.clip),
                    "--realtime",
                    "--sink",
                    "mqtt",
                ],  # fmt: skip
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.started = time.time()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def meta(self) -> dict:
        return json.loads(self.model.with_suffix(".json").read_text())

    def labels(self) -> list[str]:
        return list(self.meta()["labels"])

    def counts(self) -> dict[str, int]:
        from edge.facestore import FaceStore

        store = FaceStore.load(self.model.with_name(self.meta()["store"]))
        return store.counts()

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"X-Edge-Request": "1", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def visitors(self) -> list[dict]:
        """The web app's unknown visitors ([] while it is not up yet)."""
        try:
            found = self.api("GET", "/api/visitors")
        except OSError:
            return []
        return found["visitors"] if isinstance(found, dict) else found

    def cli(self, *args: str) -> dict:
        """`python -m edge ARGS --config` this Pi's config: its JSON line."""
        proc = subprocess.run(
            [sys.executable, "-m", "edge", *args, "--config", str(self.config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ},
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def wait(pred, timeout: float, step: float = 0.1) -> float | None:
    """Seconds until pred() is true, or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return time.monotonic() - t0
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(step)
    return None


def household_run(data_dir: Path, model: Path, tmp_path: Path) -> dict:
    """The whole scenario; its measured figures (bench/share.py prints them)."""
    faces = data_dir / "faces"
    front_clip = make_visits_clip(
        data_dir,
        tmp_path / "front.mp4",
        [("Tony_Blair", 1.0), ("Jacques_Chirac", 7.0)],
        length_s=240,
    )
    tony_visits = [("Tony_Blair", 14.0 + 6.0 * i) for i in range(30)]
    back_clip = make_visits_clip(
        data_dir,
        tmp_path / "back.mp4",
        [("Vladimir_Putin", 1.0), *tony_visits],
        length_s=240,
        seed=1,
    )
    out: dict = {}
    with Broker(tmp_path / "broker") as broker:
        rec = Recorder(broker, ["edge/+/event", f"{SHARE_TOPIC}/#"], persistent=False).start()
        front = Pi(tmp_path / "front", "front", model, broker, front_clip)
        back = Pi(tmp_path / "back", "back", model, broker, back_clip)
        try:
            front.start()
            back.start()
            state = f"{SHARE_TOPIC}/devices/%s/library"
            assert rec.wait_for(
                lambda: rec.last(state % "front") and rec.last(state % "back"), 120
            ), "the Pis never published their library state"
            assert wait(lambda: len(front.visitors()) >= 2 and back.visitors(), 120), (
                "no unknown visitors saved"
            )
            by_time = lambda pi: sorted(pi.visitors(), key=lambda v: v["first"])  # noqa: E731
            tony, jacques = (v["id"] for v in by_time(front)[:2])
            vladimir = by_time(back)[0]["id"]

            # 1. named on front's web page -> recognized by back at the next visit
            t0 = time.time()
            front.api("POST", f"/api/visitors/{tony}/name", {"name": "Tony"})
            named = time.time()

            def recognized() -> bool:
                return any(
                    m.time > t0 and json.loads(m.payload).get("name") == "Tony"
                    for m in rec.on("edge/back/event")
                )

            assert rec.wait_for(recognized, 60), "back never recognized Tony"
            seen = next(
                m
                for m in rec.on("edge/back/event")
                if m.time > t0 and json.loads(m.payload).get("name") == "Tony"
            )
            adopted = next(
                m.time
                for m in rec.on(state % "back")
                if m.time > t0 and "tony" in json.loads(m.payload)["people"]
            )
            out["naming_s"] = round(named - t0, 2)
            out["named_to_back_adopted_s"] = round(adopted - t0, 2)
            out["named_to_back_recognized_s"] = round(seen.time - t0, 2)
            assert "Tony" in back.labels()

            # 2. two namings at the same moment, one on each Pi
            t1 = time.time()
            jobs = [
                threading.Thread(
                    target=front.api,
                    args=("POST", f"/api/visitors/{jacques}/name", {"name": "Jacques"}),
                ),
                threading.Thread(
                    target=back.api,
                    args=("POST", f"/api/visitors/{vladimir}/name", {"name": "Vladimir"}),
                ),
            ]
            for job in jobs:
                job.start()
            for job in jobs:
                job.join()
            both = wait(
                lambda: (
                    all({"Jacques", "Vladimir"} <= set(pi.labels()) for pi in (front, back))
                    and front.counts() == back.counts()
                ),
                60,
            )
            assert both is not None, (front.counts(), back.counts())
            out["concurrent_namings_both_on_both_s"] = round(time.time() - t1, 2)

            # 3. forgotten on back (the CLI, another process) -> gone from front
            t2 = time.time()
            back.cli("forget", "Hugo_Chavez", "--yes")
            gone = wait(lambda: "Hugo_Chavez" not in front.labels(), 60)
            assert gone is not None, front.labels()
            out["forget_on_back_gone_from_front_s"] = round(time.time() - t2, 2)
            entity = "homeassistant/binary_sensor/front/person_hugo_chavez/config"
            assert wait(lambda: entity not in retained(broker, "homeassistant/#", 0.5), 30), (
                "front's Home Assistant entity for Hugo_Chavez stayed"
            )

            # 4. back stopped during three changes on front; catches up on restart
            back.stop()
            front.cli("rename", "Tony", "Tony Blair")
            front.cli("forget", "Gerhard_Schroeder", "--yes")
            extra = [str(p) for p in photos(faces, "Jacques_Chirac")[5:8]]
            front.cli("enroll", "Jacques", *extra)
            assert wait(
                lambda: (
                    json.loads(rec.last(state % "front").payload)["people"]["jacques"]["photos"]
                    == front.counts()["Jacques"]
                ),
                60,
            )
            back.start()
            caught = wait(
                lambda: (
                    sorted(back.labels()) == sorted(front.labels())
                    and back.counts() == front.counts()
                ),
                120,
            )
            assert caught is not None, (back.labels(), front.labels())
            out["restart_to_caught_up_s"] = round(time.time() - back.started, 2)
            out["people"] = front.labels()
            sizes = {t: len(p) for t, p in retained(broker, f"{SHARE_TOPIC}/people/+", 1.0).items()}
            out["retained_bytes"] = sizes
            out["logs"] = {"front": front.log_text(), "back": back.log_text()}
        finally:
            front.stop()
            back.stop()
            rec.stop()
    return out
