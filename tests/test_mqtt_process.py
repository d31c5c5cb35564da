"""`python -m edge --sink mqtt` as a process against a real Mosquitto: last will, broker restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.broker import Broker, Recorder, retained
from tests.conftest import ROOT

DEVICE = "doorpi"
BASE = f"edge/{DEVICE}"


@pytest.fixture(scope="module")
def clip(data_dir: Path, tmp_path_factory) -> Path:
    """A 28 s doorbell clip: a known person, another, a stranger (tests/doorbell.py)."""
    from tests.doorbell import make_clip

    out = tmp_path_factory.mktemp("doorbell")
    make_clip(data_dir, out, visits=3, seed=3)
    return out / "clip.mp4"


def write_config(path: Path, broker: Broker, model: Path | str) -> Path:
    path.write_text(
        f"""
log_level: INFO
stats_interval_s: 1
recognize:
  model: "{model}"
detect:
  every_n_frames: 2
unknown_faces:
  enabled: false
mqtt:
  host: {broker.host}
  port: {broker.port}
  device_id: {DEVICE}
  reconnect_max_s: 1
"""
    )
    return path


def edge(log: Path, *args: str) -> subprocess.Popen:
    """Start `python -m edge ARGS`; stderr goes to `log`, stdout to a pipe."""
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "edge", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def test_sigkill_makes_the_broker_publish_offline(tmp_path, clip, models_dir):
    with Broker(tmp_path / "broker") as broker:
        cfg = write_config(tmp_path / "edge.yaml", broker, "")  # detect only
        with Recorder(broker, [f"{BASE}/status"]) as rec:
            log = tmp_path / "edge.log"
            proc = edge(log, "--config", str(cfg), "--source", str(clip), "--realtime")
            try:
                online = rec.wait_payload(f"{BASE}/status", "online", 120)
                assert online, log.read_text()[-2000:]
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            assert rec.wait_payload(f"{BASE}/status", "offline", 10), "last will not published"
        assert retained(broker, f"{BASE}/status", 0.3)[f"{BASE}/status"] == b"offline"


def _comparable(event: dict) -> tuple:
    return tuple(sorted((k, json.dumps(v)) for k, v in event.items() if k != "time"))


@pytest.mark.slow
def test_broker_restart_mid_run_loses_no_event(tmp_path, clip, trained_model):
    with Broker(tmp_path / "broker") as broker:
        cfg = write_config(tmp_path / "edge.yaml", broker, trained_model)
        rec = Recorder(broker, [f"{BASE}/event"], client_id="restart-test").start()
        args = ("--config", str(cfg), "--source", str(clip))
        reference = edge(tmp_path / "stdout.log", *args, "--sink", "stdout")
        proc = edge(tmp_path / "mqtt.log", *args, "--sink", "mqtt")
        try:
            assert rec.wait_for(lambda: rec.messages, 180), "no event before the restart"
            broker.stop()
            time.sleep(2.0)
            broker.start()
            assert proc.poll() is None, "the run ended before the broker came back"
            proc.communicate(timeout=300)
            want, _ = reference.communicate(timeout=300)
        finally:
            for p in (proc, reference):
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        err = (tmp_path / "mqtt.log").read_text()
        assert proc.returncode == 0, err[-2000:]
        assert reference.returncode == 0, (tmp_path / "stdout.log").read_text()[-2000:]
        expected = [json.loads(line) for line in want.splitlines()]
        assert len(expected) >= 4
        assert rec.wait_for(lambda: len({m.payload for m in rec.messages}) >= len(expected), 10)
        rec.stop()
    got = list(dict.fromkeys(m.payload for m in rec.messages))  # QoS 1 may repeat, never lose
    assert [_comparable(json.loads(p)) for p in got] == [_comparable(e) for e in expected]
    lost = [line for line in err.splitlines() if "connection to" in line and "lost" in line]
    assert len(lost) == 1, err[-3000:]
    assert "Traceback" not in err


def test_device_id_clashing_with_a_running_device_exits_2(tmp_path, clip, models_dir):
    """'front-door' slugs like the running 'Front Door': one line, exit 2, the other untouched."""
    from edge.config import load_config
    from edge.mqtt import MqttSink

    with Broker(tmp_path / "broker") as broker:
        cfg = write_config(tmp_path / "edge.yaml", broker, "")
        cfg.write_text(cfg.read_text().replace(f"device_id: {DEVICE}", "device_id: front-door"))
        front = load_config(
            None,
            {"mqtt.host": broker.host, "mqtt.port": broker.port, "mqtt.device_id": "Front Door"},
        )
        running = MqttSink(front)
        running.start([])
        with Recorder(broker, ["edge/Front Door/status"]) as rec:
            assert rec.wait_payload("edge/Front Door/status", "online")
            proc = edge(tmp_path / "edge.log", "--config", str(cfg), "--source", str(clip))
            out, _ = proc.communicate(timeout=120)
            err = (tmp_path / "edge.log").read_text()
            assert proc.returncode == 2, err[-2000:]
            errors = [line for line in err.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "'Front Door' already uses" in errors[0], err[-2000:]
            assert "Traceback" not in err and out == ""
            assert [m.payload for m in rec.messages] == [b"online"]
            assert running.reconnects == 0
        running.close()
