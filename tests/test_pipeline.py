"""The whole loop on a generated doorbell clip with known answers, plus stop/reload/stats.

Cost: about a minute on an idle 2-core machine (clip generation ~2 s, the 6-visit clip with
detection on every 2nd frame, a real-time run stopped by SIGTERM, the quick start clip).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import load_config
from edge.pipeline import Loop
from edge.publish import StdoutSink
from tests.broker import free_port
from tests.conftest import MODELS, ROOT, run_edge
from tests.doorbell import make_clip, score_events

EVENT_KEYS = ["type", "name", "confidence", "track", "visit", "box", "frame", "source_time", "time",
              "camera"]  # fmt: skip


@pytest.fixture(scope="module")
def clip(data_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("doorbell")
    timeline = make_clip(data_dir, out, visits=6, seed=0)
    return out / "clip.mp4", timeline


@pytest.fixture(scope="module")
def config(trained_model, tmp_path_factory) -> Path:
    """The trained test model, every other setting at its default."""
    d = tmp_path_factory.mktemp("cfg")
    path = d / "edge.yaml"
    path.write_text(
        f"recognize:\n  model: {trained_model}\nunknown_faces:\n  dir: {d / 'unknown'}\n"
    )
    return path


def _events(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines()]
    for e in events:
        assert list(e) == EVENT_KEYS, e
        assert e["type"] in ("recognized", "unknown", "left")
    return events


def test_doorbell_clip_gives_one_correct_event_per_visit(clip, config, tmp_path):
    path, timeline = clip
    stats_path = tmp_path / "stats.json"
    proc = run_edge("--config", str(config), "--source", str(path), "--stats-json", str(stats_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = _events(proc.stdout)
    score = score_events(events, timeline)
    assert score["strangers_named"] == 0, events
    assert score["outside_visits"] == 0, events
    assert (score["precision"], score["recall"]) == (1.0, 1.0), score
    assert (score["left_precision"], score["left_recall"]) == (1.0, 1.0), score
    for v in timeline["visits"]:
        during = [e for e in events if v["first_frame"] <= e["frame"] <= v["last_frame"]]
        kinds = [e["type"] for e in during if e["type"] != "left"]
        assert kinds == (["recognized"] if v["known"] else ["unknown"]), (v, during)
    names = [e["name"] for e in events if e["type"] == "recognized"]
    assert sorted(names) == sorted(e["name"] for e in events if e["type"] == "left" and e["name"])
    arrivals = [e for e in events if e["type"] != "left"]
    assert len({e["visit"] for e in arrivals}) == len(timeline["visits"])  # one id per visit
    for e in arrivals:  # ... ended by a `left` with that id and the same name
        (left,) = [x for x in events if x["type"] == "left" and x["visit"] == e["visit"]]
        assert left["name"] == e["name"] and left["frame"] > e["frame"]
    # A stranger's crops (1-4 per visit, under its visit id) were saved for naming or
    # clustering later; a known face's were not.
    saved = Counter(
        json.loads(m.read_text())["visit"] for m in (config.parent / "unknown").glob("*.json")
    )
    assert set(saved) == {e["visit"] for e in events if e["type"] == "unknown"}
    assert len(saved) == sum(not v["known"] for v in timeline["visits"])
    assert all(1 <= n <= 4 for n in saved.values()), saved

    stats = json.loads(stats_path.read_text())
    assert stats["frames_read"] == stats["frames_processed"] == timeline["frames"]
    assert stats["frames_dropped"] == 0
    assert stats["wall_s"] > 0 and stats["fps"] == pytest.approx(
        stats["frames_processed"] / stats["wall_s"], rel=0.01
    )
    assert set(stats["stages"]) == {"capture", "detect", "track", "recognize", "publish"}
    for stage in stats["stages"].values():
        assert 0 <= stage["median_ms"] <= stage["p95_ms"]
    # Detection every 5th frame while everyone in view is decided, none while the scene is
    # empty and still, every frame only while a face is being decided (155 of 739 frames
    # measured since issue 24's cheaper detection: the res10-verified boxes take a few more
    # crops to decide a face than the Haar-proposed ones did).
    assert stats["totals"]["detect"]["runs"] < timeline["frames"] / 4.5, stats["totals"]
    assert stats["latency_s"]["count"] == len(timeline["visits"])
    assert 0 < stats["latency_s"]["median"] <= stats["latency_s"]["p95"]


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sighup_reload_and_sigterm_stop(clip, config, tmp_path):
    """Real time: a bad config on SIGHUP keeps the old one; SIGTERM flushes `left`, exit 0."""
    path, _ = clip
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(config.read_text())
    out, err = tmp_path / "out.jsonl", tmp_path / "err.log"
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "--config", str(cfg), "--source", str(path)]
            + ["--realtime", "--stats-json", str(tmp_path / "s.json")],
            cwd=ROOT,
            stdout=fo,
            stderr=fe,
        )
    try:
        _wait_for(lambda: '"recognized"' in out.read_text(), 60, "the first event")
        cfg.write_text("detect:\n  method: [oops\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reload failed" in err.read_text(), 30, "the reload error")
        cfg.write_text(config.read_text() + "detect:\n  every_n_frames: 1\n")
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "reloaded" in err.read_text(), 60, "the reload")
        assert proc.poll() is None, "the loop keeps running through reloads"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = err.read_text()
    assert log.count("reload failed") == 1 and "Traceback" not in log
    events = _events(out.read_text())
    arrived = [e["name"] for e in events if e["type"] != "left"]
    left = [e["name"] for e in events if e["type"] == "left"]
    assert arrived and sorted(arrived, key=str) == sorted(left, key=str)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_read"] < 700  # stopped early, not at the end of the clip


def test_quick_start_without_a_model_is_detect_only(models_dir, tmp_path):
    """`python -m edge` before training: one warning, everyone unknown, crops kept."""
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(f"unknown_faces:\n  dir: {tmp_path / 'unknown'}\n")
    if (MODELS / "faces.tflite").exists():
        pytest.skip("models/faces.tflite exists: the quick start would use it")
    proc = run_edge(
        "--config", str(cfg), "--max-frames", "90", "--stats-json", str(tmp_path / "s.json")
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("no face model") == 1
    events = _events(proc.stdout)
    assert [e["type"] for e in events] == ["unknown", "left"]
    assert all(e["name"] is None for e in events)
    assert events[0]["visit"] == events[1]["visit"]
    metas = [json.loads(m.read_text()) for m in (tmp_path / "unknown").glob("*.json")]
    assert 1 <= len(metas) <= 4 and {m["visit"] for m in metas} == {events[0]["visit"]}
    assert json.loads((tmp_path / "s.json").read_text())["frames_read"] == 90


def test_missing_explicit_model_is_an_error(tmp_path):
    cfg = tmp_path / "edge.yaml"
    cfg.write_text("recognize:\n  model: nowhere.tflite\n")
    proc = run_edge("--config", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "nowhere.tflite" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


class _SwitchedOff(StdoutSink):
    """The stdout sink with the MQTT on/off switch turned off."""

    enabled = False


def test_switched_off_reads_frames_but_detects_nothing(models_dir, tmp_path):
    cfg = load_config(None, {"recognize.model": "", "unknown_faces.enabled": False})
    args = argparse.Namespace(
        config=None, source=None, preview=False, sink="stdout", realtime=False,
        every_frame=False, max_frames=60, stats_json=str(tmp_path / "s.json"),
    )  # fmt: skip
    buf = io.StringIO()
    loop = Loop(cfg, args, [_SwitchedOff(buf)])
    assert loop.run() == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_read"] == 60 and stats["frames_processed"] == 0
    assert stats["stages"]["detect"]["median_ms"] is None
    assert buf.getvalue() == ""


def test_steady_state_downscales_only_the_frames_it_detects_on(models_dir, data_dir, tmp_path):
    """A person who stays in view: detection every 5th frame, and only those frames pay for
    the small copy detection looks at (the others are decoded, tracked and published)."""
    cfg = load_config(
        None,
        {"recognize.model": "", "unknown_faces.enabled": False,
         "camera.source": str(data_dir / "video/cap13_edit2.mp4")},
    )  # fmt: skip
    args = argparse.Namespace(
        config=None, source=None, preview=False, sink="stdout", realtime=False,
        every_frame=True, max_frames=150, stats_json=str(tmp_path / "s.json"),
    )  # fmt: skip
    loop = Loop(cfg, args, [StdoutSink(io.StringIO())])
    frames, read = [], loop.source.read
    loop.source.read = lambda: frames.append(read()) or frames[-1]
    assert loop.run() == 0
    detected = json.loads((tmp_path / "s.json").read_text())["totals"]["detect"]["runs"]
    made = [f for f in frames if f is not None and not callable(f.lores)]
    assert len(frames) >= 150 and 150 // 5 <= detected < 150 // 2
    assert len(made) == detected


def test_mjpeg_stream_shows_the_boxes(models_dir, tmp_path):
    """preview.mjpeg_port: the served frames carry the loop's annotations (red = unknown)."""
    port = free_port()
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(
        "recognize:\n  model: ''\nunknown_faces:\n  enabled: false\n"
        f"preview:\n  mjpeg_port: {port}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(cfg), "--realtime"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    red = 0
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and proc.poll() is None and red < 50:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/snapshot.jpg", timeout=2
                ) as r:
                    img = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
            except OSError:
                time.sleep(0.2)
                continue
            b, g, r_ = (img[..., i].astype(int) for i in range(3))
            red = int(np.count_nonzero((r_ > 170) & (g < 70) & (b < 70)))
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert red >= 50, "no red (unknown) box drawn on the MJPEG frames"
