"""Soak: the doorbell clip on a loop into `python -m edge`, MQTT sink, broker restarts.

The clip (tests/doorbell.py) is served as a live MJPEG camera on loopback, round and round;
a real Mosquitto is restarted every --restart-every seconds (down for --down seconds) while a
persistent subscriber plays Home Assistant. Reports events shown / emitted / received, and
the edge process's RSS, open fds and threads over time. Not part of the test suite.

    .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.progress import progress  # noqa: E402
from tests import doorbell  # noqa: E402
from tests.broker import Broker, Recorder  # noqa: E402
from tests.conftest import DATA, MODELS  # noqa: E402
from tests.test_faults import MjpegCamera, base_config  # noqa: E402

log = logging.getLogger("soak")
EVENT_RE = re.compile(r"edge\.pipeline: (recognized|unknown|left) ")


def proc_sample(pid: int) -> dict:
    """RSS (MB), threads, open fds and CPU seconds of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M)[1])
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M)[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return {"rss_mb": round(rss_kb / 1024, 1), "threads": threads, "fds": fds, "cpu_s": cpu_s}


def load_clip(folder: Path, visits: int, seed: int) -> tuple[list[bytes], dict]:
    """The doorbell clip as JPEG frames (made once, cached in `folder`) and its timeline."""
    if not (folder / "timeline.json").exists():
        log.info("making the doorbell clip (%d visits) in %s", visits, folder)
        doorbell.make_clip(DATA, folder, visits, seed)
    timeline = json.loads((folder / "timeline.json").read_text())
    cap = cv2.VideoCapture(str(folder / "clip.mp4"))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    return frames, timeline


def visits_shown(ticks: int, timeline: dict) -> int:
    """Visits whose last face frame has been sent after `ticks` frames of the loop."""
    n = timeline["frames"]
    loops, rest = divmod(ticks, n)
    return loops * len(timeline["visits"]) + sum(
        1 for v in timeline["visits"] if v["last_frame"] < rest
    )


def flat(values: list[float]) -> dict:
    """Start (after warm-up), end, max and growth of a series."""
    return {
        "start": values[0],
        "end": values[-1],
        "min": min(values),
        "max": max(values),
        "growth": round(values[-1] - values[0], 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0, help="how long to run")
    p.add_argument("--restart-every", type=float, default=180.0, help="broker restart period, s")
    p.add_argument("--down", type=float, default=5.0, help="broker down time per restart, s")
    p.add_argument("--sample-every", type=float, default=10.0, help="process sample period, s")
    p.add_argument("--visits", type=int, default=10, help="visits in the clip")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--model", default=str(MODELS / "faces.tflite"), help="face model ('' = none)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s soak: %(message)s")

    work = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    frames, timeline = load_clip(ROOT / "bench" / "results" / "soak-clip", args.visits, args.seed)
    log.info("clip: %d frames (%.0f s), %d visits", len(frames), len(frames) / 15, args.visits)
    model = args.model if args.model and Path(args.model).exists() else ""
    broker = Broker(work / "broker").start()
    base = "edge/soak"
    ha = Recorder(broker, [f"{base}/event", f"{base}/status"], client_id="soak-ha").start()
    camera = MjpegCamera(fps=doorbell.FPS)
    camera.play_clip(frames)
    cfg = base_config(
        work,
        camera.url,
        mqtt={"host": broker.host, "port": broker.port, "device_id": "soak", "reconnect_max_s": 2},
        recognize={"model": model, "threads": 1},
        decide={"away_s": 1.5},
        camera={"stall_timeout_s": 5.0, "reopen_backoff_max_s": 5.0},
        unknown_faces={"max_files": 200},
    )
    cfg["stats_interval_s"] = 30.0
    (work / "config.yaml").write_text(json.dumps(cfg))
    err = open(work / "edge.log", "wb")  # noqa: SIM115 - lives as long as the process
    edge = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(work / "config.yaml")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    log.info("edge pid %d, model %s, work %s", edge.pid, model or "(none: detect only)", work)
    samples, restarts = [], 0
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_restart = t0 + args.restart_every
    next_sample = t0
    status = "ok"
    bar = progress(total=round(args.minutes * 60), desc="soak", unit="s")
    try:
        while time.monotonic() < end:
            bar.update(round(time.monotonic() - t0) - bar.n)
            if edge.poll() is not None:
                status = f"edge exited {edge.returncode} after {time.monotonic() - t0:.0f} s"
                log.error("%s", status)
                break
            now = time.monotonic()
            if now >= next_sample:
                s = proc_sample(edge.pid)
                s["t_s"] = round(now - t0, 1)
                s["emitted"] = len(
                    EVENT_RE.findall((work / "edge.log").read_text(errors="replace"))
                )
                s["received"] = len(ha.on(f"{base}/event"))
                samples.append(s)
                next_sample += args.sample_every
            if now >= next_restart:
                log.info("broker restart %d (down %.0f s)", restarts + 1, args.down)
                broker.stop()
                time.sleep(args.down)
                broker.start()
                restarts += 1
                next_restart += args.restart_every
            time.sleep(0.2)
        shown = visits_shown(camera.ticks, timeline)
        camera.playing = False
        time.sleep(3.0)  # the last visitor leaves (away_s) before we stop
        final = proc_sample(edge.pid) if edge.poll() is None else None
        edge.send_signal(signal.SIGTERM)
        t_stop = time.monotonic()
        try:
            code = edge.wait(timeout=30)
        except subprocess.TimeoutExpired:
            edge.kill()
            code = "killed after 30 s"
        stop_s = round(time.monotonic() - t_stop, 2)
        ha.wait_for(
            lambda: ha.last(f"{base}/status") and ha.last(f"{base}/status").text == "offline", 10
        )
        time.sleep(1.0)
    finally:
        bar.close()
        camera.stop()
        ha.stop()
        broker.stop()
        err.close()

    text = (work / "edge.log").read_text(errors="replace")
    emitted = EVENT_RE.findall(text)
    received = [json.loads(m.payload) for m in ha.on(f"{base}/event")]
    unique = {(e["type"], e["track"], e["frame"]) for e in received}
    kinds = {k: emitted.count(k) for k in ("recognized", "unknown", "left")}
    elapsed = samples[-1]["t_s"] if samples else 0.0
    warm = [s for s in samples if s["t_s"] >= min(120.0, elapsed / 4)] or samples
    result = {
        "status": status,
        "minutes_planned": args.minutes,
        "minutes_run": round(elapsed / 60, 2),
        "model": model,
        "clip_frames": len(frames),
        "clip_visits": len(timeline["visits"]),
        "frames_sent": camera.ticks,
        "broker_restarts": restarts,
        "broker_down_s": args.down,
        "visits_shown": shown,
        "events_expected": 2 * shown,
        "events_emitted": len(emitted),
        "events_emitted_by_type": kinds,
        "events_received": len(received),
        "events_received_unique": len(unique),
        "events_lost": len(emitted) - len(unique),
        "exit_code": code,
        "stop_s": stop_s,
        "tracebacks": text.count("Traceback"),
        "rss_mb": flat([s["rss_mb"] for s in warm]),
        "fds": flat([s["fds"] for s in warm]),
        "threads": flat([s["threads"] for s in warm]),
        "cpu_percent": round(100 * (final or samples[-1])["cpu_s"] / max(elapsed, 1), 1),
        "warmup_s": warm[0]["t_s"] if warm else 0,
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"{'t (min)':>8} {'RSS MB':>8} {'fds':>5} {'threads':>8} {'emitted':>8} {'received':>9}")
    step = max(1, len(samples) // 15)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(
            f"{s['t_s'] / 60:8.1f} {s['rss_mb']:8.1f} {s['fds']:5d} {s['threads']:8d} "
            f"{s['emitted']:8d} {s['received']:9d}"
        )
    print()
    for key in (
        "status", "minutes_run", "broker_restarts", "visits_shown", "events_expected",
        "events_emitted", "events_received_unique", "events_lost", "exit_code", "stop_s",
        "tracebacks", "cpu_percent",
    ):  # fmt: skip
        print(f"{key:>24}: {result[key]}")
    for key in ("rss_mb", "fds", "threads"):
        r = result[key]
        print(f"{key:>24}: {r['start']} -> {r['end']} (min {r['min']}, max {r['max']})")
    print(f"{'json':>24}: {args.out}")
    shutil.rmtree(work / "broker", ignore_errors=True)
    log.info("edge log kept at %s", work / "edge.log")
    if result["events_lost"] or status != "ok" or code != 0:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
