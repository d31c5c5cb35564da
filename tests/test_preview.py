"""Preview: annotation, the Tk window under a real Xvfb (screenshot, q/Esc), MJPEG on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import UserError
from edge.preview import NO_DISPLAY, MjpegServer, PreviewWindow, annotate

GREEN, RED = (0, 255, 0), (0, 0, 255)


def scene(data_dir: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(data_dir / "video" / "cap13_edit2.mp4"))
    ok, image = cap.read()
    cap.release()
    assert ok
    return image  # 400x300


def is_colour(pixels: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels == color, axis=-1)


# --- annotate -------------------------------------------------------------------------------


def test_annotate_draws_boxes_labels_and_fps_on_a_copy(data_dir):
    image = scene(data_dir)
    before = image.copy()
    out = annotate(image, [((100, 80, 120, 140), "alice 0.93", GREEN)], fps=14.7)
    assert np.array_equal(image, before)  # input untouched
    assert out.shape == image.shape and out is not image
    # the box outline: left, right, top and bottom edges in the box colour
    assert is_colour(out[80:220, 100], GREEN).all() and is_colour(out[80:220, 219], GREEN).all()
    assert is_colour(out[80, 100:220], GREEN).all() and is_colour(out[219, 100:220], GREEN).all()
    # the inside is the picture, not paint
    assert np.array_equal(out[90:210, 110:210], image[90:210, 110:210])
    # the label: a filled tag in the box colour above the box, with dark text in it
    tag = out[66:79, 100:150]
    assert is_colour(tag, GREEN).mean() > 0.5 and (tag.sum(axis=-1) < 200).any()
    # the FPS text: white on black in the top-left corner
    corner = out[0:20, 0:60]
    assert is_colour(corner, (0, 0, 0)).any() and (corner.min(axis=-1) > 200).any()


def test_annotate_label_goes_below_a_box_at_the_top_and_no_fps_leaves_corner(data_dir):
    image = scene(data_dir)
    out = annotate(image, [((0, 0, 80, 60), "unknown 0.41", RED)], fps=None)
    assert is_colour(out[61:75, 5:40], RED).mean() > 0.5  # tag below the box
    assert np.array_equal(out[100:, 100:], image[100:, 100:])
    assert annotate(image, [], None).tobytes() == image.tobytes()


# --- the Tk window under Xvfb ---------------------------------------------------------------


def test_no_display_is_one_clear_line(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(UserError) as err:
        PreviewWindow()
    assert str(err.value) == NO_DISPLAY
    assert NO_DISPLAY == "--preview needs a display; use preview.mjpeg_port for a headless Pi"


def test_unreachable_display_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("DISPLAY", f":{free_display()}")
    with pytest.raises(UserError) as err:
        PreviewWindow()
    assert str(err.value).startswith(NO_DISPLAY + " (cannot open :")
    assert "\n" not in str(err.value)


def free_display() -> int:
    for n in range(90 + os.getpid() % 50, 400):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="module")
def xvfb():
    """A real X server on a free display number; yields its DISPLAY value."""
    if not shutil.which("Xvfb") or not shutil.which("import"):
        pytest.skip("Xvfb and imagemagick's import are needed (./setup.sh --test-deps)")
    for _ in range(5):
        n = free_display()
        proc = subprocess.Popen(
            ["Xvfb", f":{n}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(f"/tmp/.X11-unix/X{n}").exists():
                break
            time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail("Xvfb did not start")
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=10)


def screenshot(display: str) -> np.ndarray:
    png = subprocess.run(
        ["import", "-display", display, "-window", "root", "png:-"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def find(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, int]:
    """Top-left of the exact copy of `needle` in `haystack`."""
    score = cv2.matchTemplate(haystack, needle, cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(score)
    h, w = needle.shape[:2]
    assert np.array_equal(haystack[y : y + h, x : x + w], needle), "frame not on screen"
    return x, y


def show_until_painted(window: PreviewWindow, image: np.ndarray) -> None:
    for _ in range(5):
        assert window.show(image)
        time.sleep(0.05)


def test_window_shows_the_annotated_frame(xvfb, monkeypatch, data_dir):
    monkeypatch.setenv("DISPLAY", xvfb)
    out = annotate(scene(data_dir), [((100, 80, 120, 140), "alice 0.93", GREEN)], 14.7)
    with PreviewWindow() as window:
        show_until_painted(window, out)
        shot = screenshot(xvfb)
    x, y = find(shot, out)  # shown pixel for pixel (PPM is lossless)
    box = shot[y + 80 : y + 220, x + 100 : x + 220]
    assert is_colour(box[:, 0], GREEN).all() and is_colour(box[:, -1], GREEN).all()
    assert is_colour(box[0], GREEN).all() and is_colour(box[-1], GREEN).all()
    # and the colour is nowhere else on screen but the box and its tag
    ys, xs = np.nonzero(is_colour(shot, GREEN))
    assert xs.min() == x + 100 and ys.max() == y + 219


def test_window_shrinks_a_frame_larger_than_the_screen(xvfb, monkeypatch, data_dir):
    monkeypatch.setenv("DISPLAY", xvfb)  # the screen is 640x480
    big = cv2.resize(scene(data_dir), (1200, 900))
    with PreviewWindow() as window:
        show_until_painted(window, big)
        shot = screenshot(xvfb)
    fit = min(640 * 0.95 / 1200, 480 * 0.9 / 900)
    expect = cv2.resize(big, (int(1200 * fit), int(900 * fit)), interpolation=cv2.INTER_AREA)
    find(shot, expect)


@pytest.mark.parametrize("key", ["q", "Escape"])
def test_q_or_escape_closes_the_window(xvfb, monkeypatch, data_dir, key):
    if not shutil.which("xdotool"):
        pytest.skip("xdotool is needed to press keys (./setup.sh --test-deps)")
    monkeypatch.setenv("DISPLAY", xvfb)
    image = scene(data_dir)
    with PreviewWindow() as window:
        show_until_painted(window, image)
        subprocess.run(["xdotool", "key", key], check=True, timeout=10, env=os.environ)
        results = []
        for _ in range(20):
            results.append(window.show(image))
            if not results[-1]:
                break
            time.sleep(0.05)
        assert results[-1] is False
        assert window.show(image) is False  # stays closed


# --- MJPEG ------------------------------------------------------------------------------------


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        return resp.read()


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def read_part(stream) -> bytes:
    """One part of a multipart/x-mixed-replace body: boundary, headers, JPEG."""
    line = stream.readline()
    while line in (b"\r\n", b"\n"):
        line = stream.readline()
    assert line.startswith(b"--")
    length = None
    while (line := stream.readline()) not in (b"\r\n", b"\n"):
        name, _, val = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(val)
        elif name.lower() == "content-type":
            assert val.strip() == "image/jpeg"
    assert length
    return stream.read(length)


def test_mjpeg_stream_and_snapshot(data_dir):
    image = scene(data_dir)
    frame1 = annotate(image, [((100, 80, 120, 140), "alice 0.93", GREEN)], 14.7)
    frame2 = annotate(image, [((200, 100, 80, 80), "bob 0.88", RED)], 15.1)
    with MjpegServer("127.0.0.1", 0) as server:
        base = f"http://127.0.0.1:{server.port}"
        with pytest.raises(urllib.error.HTTPError) as err:
            get(base + "/snapshot.jpg")
        assert err.value.code == 503  # nothing to show yet
        server.update(frame1)
        snap = decode(get(base + "/snapshot.jpg"))
        assert snap.shape == frame1.shape
        assert np.abs(snap.astype(int) - frame1).mean() < 4  # JPEG quality 80
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
            first = decode(read_part(resp))
            assert np.abs(first.astype(int) - frame1).mean() < 4
            server.update(frame2)
            second = decode(read_part(resp))
            assert np.abs(second.astype(int) - frame2).mean() < 4
            # the red box of frame 2 is there, the green one of frame 1 is gone
            assert second[100:180, 200, 2].mean() > 200 and second[100:180, 200, 1].mean() < 60
            edge1 = (slice(80, 220), slice(100, 102))  # where frame 1's green box was
            assert (
                np.abs(second[edge1].astype(int) - frame2[edge1]).mean()
                < np.abs(second[edge1].astype(int) - frame1[edge1]).mean()
            )
        with pytest.raises(urllib.error.HTTPError) as err:
            get(base + "/other")
        assert err.value.code == 404


def test_mjpeg_port_in_use_is_one_clear_line():
    with MjpegServer("127.0.0.1", 0) as server, pytest.raises(UserError) as err:
        MjpegServer("127.0.0.1", server.port)
    assert str(err.value).startswith(
        f"preview.mjpeg_port: cannot serve MJPEG on 127.0.0.1:{server.port}: "
    )


def _closed_by_server(sock, wait: float) -> bool:
    """True when the server closes `sock` (recv gives b"" or a reset) within `wait` seconds."""

    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_mjpeg_connections_are_capped_and_idle_ones_time_out(data_dir, caplog):
    """1100 idle connections once used every fd of the process: now at most MAX_CLIENTS stay."""
    import socket

    from edge.preview import MAX_CLIENTS

    with MjpegServer("127.0.0.1", 0, timeout_s=10.0) as server:
        server.update(scene(data_dir))
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
        try:
            # The listen backlog makes some accepts late: poll until the refused are closed.
            closed: list = []
            deadline = time.monotonic() + 8  # well before the kept ones' 10 s timeout
            while len(closed) < 30 - MAX_CLIENTS and time.monotonic() < deadline:
                closed += [s for s in idle if s not in closed and _closed_by_server(s, 0.01)]
            kept = [s for s in idle if s not in closed]
            assert len(kept) == MAX_CLIENTS
            assert not any(_closed_by_server(s, 0.01) for s in kept)
            assert all(_closed_by_server(s, 20) for s in kept), "idle clients are dropped"
        finally:
            for s in idle:
                s.close()
        assert decode(get(f"http://127.0.0.1:{server.port}/snapshot.jpg")) is not None
    refused = [r for r in caplog.records if "connections open" in r.getMessage()]
    # Once per episode, not per connection: accepts interleave with refusals (listen backlog).
    assert 1 <= len(refused) <= MAX_CLIENTS + 1
