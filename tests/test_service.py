"""The systemd unit (verified offline by systemd-analyze) and sd_notify over a real socket."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.notify import Notifier
from tests.conftest import ROOT

UNIT = ROOT / "systemd" / "edge.service"
ANALYZE = shutil.which("systemd-analyze")


def render_unit(folder: Path, user: str = "root") -> Path:
    """The unit as install.sh writes it, with this checkout's real paths."""
    base = sys.base_prefix
    readonly = str(ROOT) if base.startswith("/usr") else f"{ROOT} {base}"
    text = (
        UNIT.read_text()
        .replace("@ROOT@", str(ROOT))
        .replace("@READONLY@", readonly)
        .replace("@USER@", user)
    )
    assert "@" not in re.sub(r"@(system-service|privileged|resources)", "", text)
    out = folder / "edge.service"
    out.write_text(text)
    return out


def test_unit_runs_the_venv_with_notify_watchdog_and_restart_limits(tmp_path):
    text = render_unit(tmp_path).read_text()
    assert f"ExecStart={ROOT}/.venv/bin/python -m edge --config /etc/edge-faces/config.yaml" in text
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "DevicePolicy=closed",
        "SupplementaryGroups=video",
        "CapabilityBoundingSet=",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    watchdog = int(re.search(r"^WatchdogSec=(\d+)$", text, re.M).group(1))
    assert 10 <= watchdog <= 120
    # Automatic restarts alone can never reach the start limit (it would leave a hallway
    # appliance dead until someone runs `systemctl reset-failed`).
    interval = int(re.search(r"^StartLimitIntervalSec=(\d+)$", text, re.M)[1])
    burst = int(re.search(r"^StartLimitBurst=(\d+)$", text, re.M)[1])
    restart_sec = int(re.search(r"^RestartSec=(\d+)$", text, re.M)[1])
    assert (burst - 1) * restart_sec >= interval
    assert "RestartPreventExitStatus" not in text


@pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)
def test_unit_passes_systemd_analyze_verify_and_security(tmp_path):
    unit = render_unit(tmp_path)
    verify = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
    security = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in security.stderr:  # systemd older than 252
        pytest.skip(f"systemd-analyze security --offline unsupported: {security.stderr.strip()}")
    score = float(
        re.search(r"Overall exposure level for edge.service: ([\d.]+)", security.stdout)[1]
    )
    assert score <= 2.0, security.stdout  # "OK" band; each remaining item is the camera or network


@pytest.fixture
def notify_socket(tmp_path):
    """A real AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_notifier_sends_ready_watchdog_status_reloading_stopping(notify_socket):
    path, sock = notify_socket
    n = Notifier(str(path))
    assert n.active
    n.ready("watching picamera2")
    n.watchdog()
    n.status("12.0 fps")
    n.reloading()
    n.stopping()
    got = [sock.recv(4096).decode() for _ in range(5)]
    assert got == [
        "READY=1\nSTATUS=watching picamera2",
        "WATCHDOG=1",
        "STATUS=12.0 fps",
        "RELOADING=1",
        "STOPPING=1",
    ]


def test_notifier_abstract_socket_from_environment(monkeypatch):
    name = f"edge-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        n = Notifier()
        n.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_notifier_is_silent_without_systemd_and_survives_a_vanished_socket(
    monkeypatch, notify_socket
):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    quiet = Notifier()
    assert not quiet.active
    quiet.ready()
    quiet.watchdog()  # no socket: nothing happens, nothing raised
    path, sock = notify_socket
    n = Notifier(str(path))
    sock.close()
    path.unlink()
    n.watchdog()  # systemd went away: logged at debug, never raised into the loop


def test_watchdog_is_fed_only_while_frames_arrive(tmp_path, models_dir):
    """A real `python -m edge` on a live stream that stalls: the pings stop, then resume."""
    from tests.test_faults import Edge, MjpegCamera, base_config, scene

    camera = MjpegCamera()
    camera.show(scene(None))
    e = Edge(tmp_path, base_config(tmp_path, camera.url), "--sink", "stdout")
    try:
        e.wait_ready()
        assert [m for _, m in e.notes][0].startswith("READY=1")
        e.wait_pings(10)
        camera.playing = False  # connected, but no more frames: a hung camera
        e.wait_log(r"camera lost")
        since = time.monotonic()
        time.sleep(3.0)
        assert e.pings(since) == 0
        assert e.proc.poll() is None
        camera.playing = True
        e.wait_log(r"camera back")
        e.wait_pings(10)
        e.proc.send_signal(signal.SIGHUP)  # systemctl reload
        e.wait(lambda: e.noted("RELOADING=1"), 20, "RELOADING=1")
        e.wait(lambda: sum(m.startswith("READY=1") for _, m in e.notes) == 2, 20, "READY again")
        e.wait_pings(5)
        assert e.terminate() == 0
        assert [m for _, m in e.notes][-1] == "STOPPING=1"
    finally:
        e.close()
        camera.stop()
