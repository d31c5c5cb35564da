"""Faults a house throws at the service, each on a real `python -m edge` process.

The camera is a real MJPEG stream on loopback whose bytes the test controls; the broker is
a real Mosquitto; systemd's notify socket is a real AF_UNIX datagram socket, so the
watchdog pings show when frames are being processed. Each fault: the process stays up (or
exits with a clear reason), nothing already accepted is lost, the log says it once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.conftest import MODELS, ROOT

FPS = 15.0


# --- a loopback IP camera ----------------------------------------------------------------


class MjpegCamera:
    """An MJPEG HTTP camera on 127.0.0.1 sending `payload` FPS times a second while playing.

    `payload` is raw bytes (any JPEG, or junk, or nothing); close() drops the camera off the
    network and open() brings it back on the same port.
    """

    def __init__(self, port: int = 0, fps: float = FPS) -> None:
        self.fps = fps
        self.port = port
        self.payload = b""
        self.playing = True
        self.sent = 0
        self.clip: list[bytes] = []
        self.ticks = 0
        self._cond = threading.Condition()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self.answering = threading.Event()
        self.answering.set()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self.open()
        self._ticker.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                cam.answering.wait(30)  # a camera slow to answer holds its client's open
                server = cam._server
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                seq = cam._seq
                while cam._server is server and not cam._stop.is_set():
                    with cam._cond:
                        cam._cond.wait_for(
                            lambda s=seq: cam._seq != s or cam._server is not server, 0.5
                        )
                        if cam._seq == seq:
                            continue
                        seq, payload = cam._seq, cam.payload
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    try:
                        self.wfile.write(head % len(payload) + payload + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    cam.sent += 1

        return Handler

    def _tick(self) -> None:
        period, next_t = 1.0 / self.fps, time.monotonic()
        while True:
            next_t += period
            if self._stop.wait(max(0.0, next_t - time.monotonic())):
                return
            if self.playing and self._server is not None:
                with self._cond:
                    if self.clip:
                        self.payload = self.clip[self.ticks % len(self.clip)]
                    self.ticks += 1
                    self._seq += 1
                    self._cond.notify_all()

    def play_clip(self, jpegs: list[bytes]) -> None:
        """Send these JPEG frames one per tick, round and round (ticks counts them)."""
        with self._cond:
            self.clip, self.ticks = list(jpegs), 0

    def show(self, frame: np.ndarray | bytes) -> None:
        """Send this image (encoded as JPEG) or these raw bytes from now on."""
        if isinstance(frame, np.ndarray):
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            frame = buf.tobytes()
        with self._cond:
            self.payload = frame

    def open(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        """Unplug: stop listening and end the open streams."""
        server, self._server = self._server, None
        if server is not None:
            with self._cond:
                self._cond.notify_all()
            server.shutdown()
            server.server_close()

    def stop(self) -> None:
        self._stop.set()
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def scene(face: Path | None, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A plain grey-blue wall, with the photo `face` (250x250 LFW crop) in the middle."""
    w, h = size
    frame = np.full((h, w, 3), (120, 110, 100), np.uint8)
    if face is not None:
        photo = cv2.imread(str(face))
        side = min(h, w) * 3 // 4
        photo = cv2.resize(photo, (side, side))
        y, x = (h - side) // 2, (w - side) // 2
        frame[y : y + side, x : x + side] = photo
    return frame


# --- the process under test --------------------------------------------------------------


class Edge:
    """`python -m edge` with a config written here and systemd's notify socket faked."""

    def __init__(self, folder: Path, config: dict, *args: str, env: dict | None = None) -> None:
        self.folder = folder
        self.config_path = folder / "config.yaml"
        self.write_config(config)
        self.notify_path = folder / "notify.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.notify_path))
        self._sock.settimeout(0.2)
        self.notes: list[tuple[float, str]] = []
        self._reading = True
        self._reader = threading.Thread(target=self._read_notes, daemon=True)
        self._reader.start()
        self.stdout_path, self.stderr_path = folder / "stdout.txt", folder / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "--config", str(self.config_path), *args],
                cwd=ROOT,
                stdout=out,
                stderr=err,
                env={**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **(env or {})},
            )

    def write_config(self, config: dict) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def _read_notes(self) -> None:
        while self._reading:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.notes.append((time.monotonic(), line))

    def pings(self, since: float = 0.0) -> int:
        """WATCHDOG=1 messages received after monotonic time `since`."""
        return sum(1 for t, m in list(self.notes) if m == "WATCHDOG=1" and t >= since)

    def noted(self, message: str) -> bool:
        return any(m == message for _, m in list(self.notes))

    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def events(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def wait(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait for pred(); fail with the log when the process died or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"edge exited {self.proc.returncode} waiting for {what}:\n{self.log}")
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{self.log[-4000:]}")

    def wait_log(self, pattern: str, timeout: float = 20.0) -> None:
        self.wait(lambda: re.search(pattern, self.log, re.M) is not None, timeout, pattern)

    def wait_more(self, pattern: str, timeout: float = 20.0) -> None:
        """Wait until `pattern` is in the log once more than now."""
        n = self.count(pattern)
        self.wait(lambda: self.count(pattern) > n, timeout, f"another {pattern}")

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log, re.M))

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait(lambda: any(m.startswith("READY=1") for _, m in self.notes), timeout, "READY=1")

    def wait_pings(self, n: int = 5, timeout: float = 20.0) -> None:
        since = time.monotonic()
        self.wait(lambda: self.pings(since) >= n, timeout, f"{n} watchdog pings")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM as systemd does; the exit status (the test fails if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"edge did not exit within {timeout} s of SIGTERM:\n{self.log}")
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reading = False
        self._sock.close()


def base_config(folder: Path, source: str, **sections: dict) -> dict:
    """A fast-reacting config: detect only unless a model is given, absolute model paths."""
    cfg: dict = {
        "log_level": "INFO",
        "stats_interval_s": 2.0,
        "camera": {
            "source": source,
            "width": 640,
            "height": 480,
            "fps": FPS,
            "stall_timeout_s": 1.0,
            "reopen_backoff_max_s": 1.0,
        },
        "detect": {
            "res10_prototxt": str(MODELS / "deploy.prototxt.txt"),
            "res10_model": str(MODELS / "res10_300x300_ssd_iter_140000.caffemodel"),
            "blazeface_model": str(MODELS / "face_detection_short_range.tflite"),
            "landmark_model": str(MODELS / "face_landmark.tflite"),
            "threads": 1,
        },
        "track": {"max_missed_s": 0.5},
        "decide": {"away_s": 1.0},
        "recognize": {"model": "", "threads": 1},
        "unknown_faces": {"dir": str(folder / "unknown_faces")},
        "history": {"path": str(folder / "history" / "events.db")},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


@pytest.fixture
def camera():
    cam = MjpegCamera()
    yield cam
    cam.stop()


@pytest.fixture
def faces(data_dir) -> list[Path]:
    """One held-out-style photo per person in the shared data (LFW crops)."""
    return [sorted(p.glob("*.jpg"))[0] for p in sorted((data_dir / "faces").iterdir())]


@pytest.fixture
def edge_proc(tmp_path, models_dir):
    """Start an Edge (call the returned function); it is killed at the end of the test."""
    started: list[Edge] = []

    def start(config: dict, *args: str, env: dict | None = None) -> Edge:
        e = Edge(tmp_path, config, *args, env=env)
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


def no_traceback(e: Edge) -> None:
    assert "Traceback" not in e.log, e.log


# --- the faults --------------------------------------------------------------------------


def visit(camera: MjpegCamera, e: Edge, face: Path, kind: str = "unknown") -> None:
    """A face in front of the camera until its event is out, then an empty scene until left."""
    camera.show(scene(face))
    e.wait_more(rf"edge.pipeline: {kind} ", 30)
    camera.show(scene(None))
    e.wait_more(r"edge.pipeline: left ", 30)


def test_camera_unplugged_mid_run_comes_back(tmp_path, camera, faces, edge_proc):
    camera.show(scene(None))
    e = edge_proc(base_config(tmp_path, camera.url), "--sink", "stdout")
    e.wait_ready()
    e.wait_pings(5)
    visit(camera, e, faces[0])

    camera.close()  # unplugged
    e.wait_log(r"camera lost")
    time.sleep(3.0)  # several reopen attempts while it is gone
    since = time.monotonic()
    time.sleep(1.0)
    assert e.pings(since) == 0  # no frames, no watchdog: systemd would restart a hung camera
    assert e.proc.poll() is None

    camera.open()  # plugged back in, same address
    e.wait_log(r"camera back")
    e.wait_pings(5)
    visit(camera, e, faces[1])
    assert e.terminate() == 0
    assert e.count(r"camera lost") == 1 and e.count(r"camera back") == 1
    assert [ev["type"] for ev in e.events()] == ["unknown", "left", "unknown", "left"]
    assert e.noted("STOPPING=1")
    no_traceback(e)


def test_broker_down_at_start_comes_up_later(tmp_path, camera, faces, edge_proc):
    from tests.broker import Broker, Recorder, retained

    broker = Broker(tmp_path / "broker").start()
    base = "edge/door"
    # Home Assistant's side: a persistent session, so the broker keeps what it missed.
    rec = Recorder(broker, [f"{base}/#"], client_id="ha").start()
    broker.stop()
    try:
        camera.show(scene(None))
        cfg = base_config(
            tmp_path,
            camera.url,
            mqtt={"host": broker.host, "port": broker.port, "device_id": "door"},
        )
        cfg["mqtt"]["reconnect_max_s"] = 1
        e = edge_proc(cfg)
        e.wait_ready()
        e.wait_log(r"MQTT broker .* unreachable")
        for face in faces[:2]:  # two visits while the broker is down: 4 events accepted
            visit(camera, e, face)
        broker.start()
        e.wait_log(r"MQTT connected")
        assert rec.wait_for(lambda: len(rec.on(f"{base}/event")) >= 4, 20), rec.messages
        camera.show(scene(faces[2]))  # and one with the broker up
        assert rec.wait_for(lambda: len(rec.on(f"{base}/event")) >= 5, 30)
        camera.show(scene(None))
        assert rec.wait_for(lambda: len(rec.on(f"{base}/event")) >= 6, 30)
        assert e.terminate() == 0
        held = retained(broker, f"{base}/#")
    finally:
        rec.stop()
        broker.stop()
    import json

    events = [json.loads(m.payload) for m in rec.on(f"{base}/event")]
    assert [ev["type"] for ev in events] == ["unknown", "left"] * 3
    assert [ev["track"] for ev in events] == sorted(ev["track"] for ev in events)
    assert [ev["visit"] for ev in events] == [1, 1, 2, 2, 3, 3]
    assert held[f"{base}/status"] == b"offline" and held[f"{base}/unknown"] == b"OFF"
    assert e.count(r"MQTT broker .* unreachable") == 1  # once, not once per retry
    no_traceback(e)


def test_reload_while_starting_does_not_kill_the_service(tmp_path, camera, faces, edge_proc):
    """`systemctl reload` during start-up (here: while the camera is slow to answer) leaves
    a working service; SIGHUP's default action would end it."""
    camera.show(scene(None))
    camera.answering.clear()
    e = edge_proc(base_config(tmp_path, camera.url), "--sink", "stdout")
    e.wait_log(r"event history in")  # starting: outputs built, camera not open yet
    for _ in range(3):
        e.proc.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        assert e.proc.poll() is None, f"edge exited {e.proc.returncode} on SIGHUP:\n{e.log}"
    camera.answering.set()
    e.wait_ready()
    visit(camera, e, faces[0])
    assert e.terminate() == 0
    assert [ev["type"] for ev in e.events()] == ["unknown", "left"]
    no_traceback(e)


def test_corrupt_detector_model_on_reload_keeps_the_old_one(tmp_path, camera, faces, edge_proc):
    model = tmp_path / "res10.caffemodel"
    shutil.copy(MODELS / "res10_300x300_ssd_iter_140000.caffemodel", model)
    camera.show(scene(None))
    cfg = base_config(tmp_path, camera.url, detect={"res10_model": str(model)})
    e = edge_proc(cfg, "--sink", "stdout")
    e.wait_ready()
    visit(camera, e, faces[0])

    model.write_bytes(b"\0garbage from a half-finished copy\n" * 1000)
    e.proc.send_signal(signal.SIGHUP)
    e.wait_log(r"reload failed, keeping the running config and model")
    assert e.noted("RELOADING=1")
    e.wait_pings(5)
    visit(camera, e, faces[1])  # the old detector still finds faces

    cfg["decide"]["away_s"] = "soon"  # a bad config on the next reload: same story
    e.write_config(cfg)
    e.proc.send_signal(signal.SIGHUP)
    e.wait_more(r"reload failed, keeping the running config and model")
    visit(camera, e, faces[2])
    assert e.terminate() == 0
    assert e.count(r"reload failed") == 2
    assert re.search(rf"reload failed.*{re.escape(str(model))}", e.log)  # names the file
    assert re.search(r"reload failed.*decide\.away_s", e.log)  # names the key
    assert [ev["type"] for ev in e.events()] == ["unknown", "left"] * 3
    no_traceback(e)


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs root to mount; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {r.stderr.decode().strip()}")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_when_saving_unknown_faces(tmp_path, camera, faces, edge_proc, full_disk):
    camera.show(scene(None))
    cfg = base_config(tmp_path, camera.url, unknown_faces={"dir": str(full_disk / "unknown")})
    e = edge_proc(cfg, "--sink", "stdout")
    e.wait_ready()
    for face in faces[:3]:
        visit(camera, e, face)
    assert e.proc.poll() is None
    assert e.terminate() == 0
    assert [ev["type"] for ev in e.events()] == ["unknown", "left"] * 3  # events unaffected
    problems = [line for line in e.log.splitlines() if "ERROR" in line or "WARNING" in line]
    assert len(problems) == 1, e.log  # said once, not once per face
    assert "disk full" in problems[0] and str(full_disk) in problems[0]
    no_traceback(e)


@pytest.mark.slow
def test_empty_junk_grayscale_and_resized_frames(tmp_path, camera, faces, edge_proc):
    camera.show(scene(None))
    e = edge_proc(base_config(tmp_path, camera.url), "--sink", "stdout")
    e.wait_ready()
    e.wait_pings(5)
    gray = cv2.cvtColor(scene(faces[0]), cv2.COLOR_BGR2GRAY)
    for what, payload in (
        ("empty", b""),
        ("junk", b"\xff\xd8 this is not a JPEG " * 50),
        ("grayscale", gray),
        ("smaller", scene(faces[1], (320, 240))),
        ("larger", scene(faces[2], (1280, 720))),
        ("odd size", scene(faces[3], (333, 251))),
    ):
        camera.show(payload)
        time.sleep(1.5)
        assert e.proc.poll() is None, f"died on {what} frames:\n{e.log}"
    camera.show(scene(None))
    e.wait_pings(5, timeout=30)  # frames flow again after whatever the bad ones did
    e.wait(lambda: e.count(r"pipeline: left ") == e.count(r"pipeline: unknown "), 30, "left")
    visit(camera, e, faces[4])
    assert e.terminate() == 0
    no_traceback(e)
    assert e.events()[-2:] and [ev["type"] for ev in e.events()[-2:]] == ["unknown", "left"]


@contextlib.contextmanager
def _visitor_over_mqtt(tmp_path, camera, faces, edge_proc):
    """edge on a real broker with a visitor at the door, `unknown` ON: (edge, recorder, base)."""
    from tests.broker import Broker, Recorder

    base = "edge/door"
    with Broker(tmp_path / "broker") as broker, Recorder(broker, [f"{base}/#"]) as rec:
        camera.show(scene(None))
        cfg = base_config(
            tmp_path,
            camera.url,
            mqtt={"host": broker.host, "port": broker.port, "device_id": "door"},
        )
        e = edge_proc(cfg)
        e.wait_ready()
        camera.show(scene(faces[0]))
        assert rec.wait_payload(f"{base}/unknown", "ON", 30)
        yield e, rec, base


def test_switch_off_while_someone_is_present_leaves_no_stale_presence(
    tmp_path, camera, faces, edge_proc
):
    with _visitor_over_mqtt(tmp_path, camera, faces, edge_proc) as (e, rec, base):
        rec.client.publish(f"{base}/enabled/set", "OFF", qos=1)
        assert rec.wait_payload(f"{base}/enabled", "OFF", 10)
        # Recognition is off while the visitor is still there: nobody may stay "present".
        assert rec.wait_payload(f"{base}/unknown", "OFF", 10), rec.on(f"{base}/unknown")
        camera.show(scene(None))
        rec.client.publish(f"{base}/enabled/set", "ON", qos=1)
        assert rec.wait_payload(f"{base}/enabled", "ON", 10)
        camera.show(scene(faces[1]))  # and it works again afterwards
        assert rec.wait_for(
            lambda: [m.text for m in rec.on(f"{base}/unknown")][-2:] == ["OFF", "ON"], 30
        )
        assert e.terminate() == 0
    no_traceback(e)


def test_off_and_on_quicker_than_a_frame_still_forgets_everyone(tmp_path, camera, faces, edge_proc):
    """OFF then ON at once (an automation): the loop sees only ON, yet OFF was published for
    the visitor; they must be forgotten, so the next face there is a new visit, ON again."""
    with _visitor_over_mqtt(tmp_path, camera, faces, edge_proc) as (e, rec, base):
        rec.client.publish(f"{base}/enabled/set", "OFF", qos=1)
        rec.client.publish(f"{base}/enabled/set", "ON", qos=1)
        assert rec.wait_for(
            lambda: [m.text for m in rec.on(f"{base}/enabled")][-2:] == ["OFF", "ON"], 10
        )
        camera.show(scene(faces[1]))  # where the first visitor stood
        assert rec.wait_for(
            lambda: [m.text for m in rec.on(f"{base}/unknown")][-2:] == ["OFF", "ON"], 30
        ), [m.text for m in rec.on(f"{base}/unknown")]
        assert e.terminate() == 0
    no_traceback(e)


@pytest.mark.slow
def test_corrupt_face_model_on_reload_keeps_the_old_one(
    tmp_path, camera, data_dir, edge_proc, trained_model
):
    from tests.splits import heldout_photos, known

    models = tmp_path / "models"
    models.mkdir()
    for name in ("faces.tflite", "faces.json"):
        shutil.copy(trained_model.parent / name, models / name)
    person = known(data_dir / "faces")[0]
    photo = heldout_photos(data_dir / "faces", person)[0]
    camera.show(scene(None))
    cfg = base_config(tmp_path, camera.url, recognize={"model": str(models / "faces.tflite")})
    e = edge_proc(cfg, "--sink", "stdout")
    e.wait_ready()
    visit(camera, e, photo, "recognized")

    whole = (models / "faces.tflite").read_bytes()
    (models / "faces.tflite").write_bytes(whole[: len(whole) // 2])  # a half-finished copy
    e.proc.send_signal(signal.SIGHUP)
    e.wait_log(r"reload failed, keeping the running config and model")
    visit(camera, e, photo, "recognized")  # the old model still names people

    (models / "faces.tflite").write_bytes(whole)  # the copy finished: reload takes it
    e.proc.send_signal(signal.SIGHUP)
    e.wait_log(r"reloaded .* \(7 people in the model\)")
    visit(camera, e, photo, "recognized")
    assert e.terminate() == 0
    assert e.count(r"reload failed") == 1
    assert re.search(r"reload failed.*faces\.tflite", e.log)
    named = [ev["name"] for ev in e.events() if ev["type"] == "recognized"]
    assert named == [person] * 3
    no_traceback(e)


FAKE_PICAMERA2 = '''
"""A stand-in for picamera2 (the only mock allowed): serves a scene image; the file named by
$FAKECAM_CTL says what the camera does next: play, hang or error."""
import os
import time

import cv2


class Picamera2:
    def __init__(self, camera_num=0):
        self.config = None
        self.ts = 1_000_000_000

    def create_video_configuration(self, main=None, lores=None, controls=None, transform=None):
        return {"main": main, "lores": lores, "controls": controls}

    def configure(self, config):
        assert config["lores"] is None, "run with detect.downscale_width >= camera.width"
        self.config = config

    def start(self):
        pass

    def capture_request(self):
        mode = open(os.environ["FAKECAM_CTL"]).read().strip()
        if mode == "error":
            raise RuntimeError("Camera frontend has timed out!")
        while mode == "hang":
            time.sleep(0.1)
            mode = open(os.environ["FAKECAM_CTL"]).read().strip()
        time.sleep(1 / 15)
        w, h = self.config["main"]["size"]
        image = cv2.resize(cv2.imread(os.environ["FAKECAM_IMAGE"]), (w, h))
        self.ts += 66_666_667
        return Request(image, self.ts)

    def stop(self):
        pass

    def close(self):
        pass


class Request:
    def __init__(self, image, ts):
        self.image, self.ts = image, ts

    def make_array(self, name):
        return self.image

    def get_metadata(self):
        return {"SensorTimestamp": self.ts}

    def release(self):
        pass
'''


@pytest.fixture
def fake_picamera2(tmp_path):
    """PYTHONPATH with a fake picamera2 + libcamera, and its control file (starts "play")."""
    pkg = tmp_path / "fakecam"
    (pkg / "picamera2").mkdir(parents=True)
    (pkg / "picamera2" / "__init__.py").write_text(FAKE_PICAMERA2)
    (pkg / "libcamera").mkdir()
    (pkg / "libcamera" / "__init__.py").write_text(
        "class Transform:\n    def __init__(self, hflip=0, vflip=0):\n"
        "        self.hflip, self.vflip = hflip, vflip\n"
    )
    ctl = tmp_path / "camctl"
    ctl.write_text("play")
    image = tmp_path / "scene.jpg"
    cv2.imwrite(str(image), scene(None))
    env = {"PYTHONPATH": str(pkg), "FAKECAM_CTL": str(ctl), "FAKECAM_IMAGE": str(image)}
    return env, ctl


def test_pi_camera_hangs_then_fails_mid_run(tmp_path, fake_picamera2, edge_proc):
    env, ctl = fake_picamera2
    cfg = base_config(tmp_path, "picamera2", detect={"downscale_width": 640})
    e = edge_proc(cfg, "--sink", "stdout", env=env)
    e.wait_ready()
    e.wait_pings(5)
    ctl.write_text("hang")  # libcamera stops delivering: no pings, so systemd restarts us
    time.sleep(1.0)
    since = time.monotonic()
    time.sleep(2.0)
    assert e.pings(since) == 0 and e.proc.poll() is None
    ctl.write_text("play")
    e.wait_pings(5)
    ctl.write_text("error")  # libcamera raises: one clear line, exit 2, systemd restarts us
    e.wait(lambda: e.proc.poll() is not None, 20, "exit")
    assert e.proc.returncode == 2
    assert e.log.rstrip().splitlines()[-1] == (
        "error: camera picamera2 failed: Camera frontend has timed out!"
    )
    assert e.noted("STOPPING=1")
    no_traceback(e)


def test_sigterm_with_camera_and_broker_gone_exits_promptly(tmp_path, camera, faces, edge_proc):
    from tests.broker import free_port

    camera.show(scene(None))
    port = free_port()  # nothing listens there: the broker is down the whole time
    cfg = base_config(
        tmp_path, camera.url, mqtt={"host": "127.0.0.1", "port": port, "device_id": "door"}
    )
    e = edge_proc(cfg)
    e.wait_ready()
    camera.show(scene(faces[0]))
    e.wait_log(r"edge.pipeline: unknown ")  # accepted, queued for the broker
    camera.close()  # and the camera goes too: the loop is blocked waiting for a frame
    e.wait_log(r"camera lost")
    t0 = time.monotonic()
    assert e.terminate(timeout=15) == 0
    took = time.monotonic() - t0
    assert took < 15  # systemd's TimeoutStopSec is 20 s; the MQTT flush waits up to 5 s
    assert re.search(r"MQTT: \d+ messages not delivered to 127.0.0.1:\d+", e.log), e.log
    assert e.noted("STOPPING=1")
    no_traceback(e)
