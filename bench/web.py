"""What the web app costs the capture loop: frames/s, CPU per frame and RSS of `python -m edge`
on a whole clip, side by side: the web app off; on with nobody looking; the Live page open (a
client reading the MJPEG stream) and the Status page reloading; the live pages open (Events,
Visitors and Status polling /api/changes every 3 s and re-reading a page when it changed); and
photo uploads (a small one, one PNG of the most pixels allowed, eight at once, then 6000x6000
ones refused).

    .venv/bin/python bench/web.py [--clip FILE] [--model FILE] [--repeats 2]

Every frame as fast as possible (--every-frame), so any cost shows as fewer frames/s; the
conditions are interleaved `--repeats` times. Prints a table; writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import existing_model  # noqa: E402
from tests.broker import free_port  # noqa: E402
from tests.doorbell import make_clip  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
CONDITIONS = ("off", "idle", "open", "pages", "uploads")
POLL_S = 3.0  # as edge/web/static/app.js
LIMIT = 0.05  # the budget: at most 5 % fewer frames/s


def find_model(arg: str | None) -> Path:
    """bench/pipeline.py's existing_model(): --model, models/, or the tests' cached model."""
    found = existing_model(arg)
    if found is None:
        raise SystemExit("error: no face model: pass --model (or run the tests once)")
    return found


def _viewer(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """A phone with the Live page open: reads the stream; the Status page every 5 s."""
    base = f"http://127.0.0.1:{port}"
    while not stop.is_set():
        try:
            with urllib.request.urlopen(f"{base}/live.mjpeg", timeout=5) as stream:
                next_status = 0.0
                while not stop.is_set():
                    chunk = stream.read(65536)
                    if not chunk:
                        break
                    counts["bytes"] += len(chunk)
                    if time.monotonic() >= next_status:
                        next_status = time.monotonic() + 5
                        urllib.request.urlopen(f"{base}/status", timeout=5).read()
                        counts["status_pages"] += 1
        except OSError:
            time.sleep(0.1)  # not serving yet, or the run ended


def _pages(port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """Events, Visitors and Status open in three tabs: each polls /api/changes and re-reads its
    page when its key changed (as app.js does)."""
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, Any] = {}
    while not stop.wait(POLL_S):
        try:
            with urllib.request.urlopen(f"{base}/api/changes", timeout=5) as r:
                changes = json.loads(r.read())
            for key, page in (("events", "events"), ("visitors", "visitors"), ("status", "status")):
                if seen.get(key) != changes[key]:
                    urllib.request.urlopen(f"{base}/{page}", timeout=10).read()
                    counts["pages"] += 1
                seen[key] = changes[key]
        except OSError:
            continue  # not serving yet, or the run ended


def bomb_png(side: int) -> bytes:
    """side x side pixels in a few dozen KB: what a hostile client uploads."""
    import cv2
    import numpy as np

    image = np.zeros((side, side, 3), np.uint8)
    cv2.circle(image, (side // 2, side // 2), side // 4, (180, 170, 200), -1)
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def _uploads(port: int, stop: threading.Event, counts: dict[str, Any]) -> None:
    """5 s into the run a 2048x2048 photo (the enrolment's models load), 5 s later one PNG of the
    most pixels a PNG may have, 10 s later eight at once; then 6000x6000 ones, refused by
    their header. counts["phases"] gets when each phase started."""
    from edge.web.uploads import OTHER_MAX_PIXELS

    small, png, huge = bomb_png(2048), bomb_png(math.isqrt(OTHER_MAX_PIXELS)), bomb_png(6000)

    def one(data: bytes = png) -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/people/Mallory/photos", data=data, method="POST",
            headers={"X-Edge-Request": "1", "Content-Type": "image/png"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(req, timeout=60).read()
        except urllib.error.HTTPError as exc:  # 400: no face in it (decoded all the same)
            counts[f"http_{exc.code}"] = counts.get(f"http_{exc.code}", 0) + 1
        except OSError:
            return
        counts["uploads"] += 1

    phases = counts["phases"]
    for phase, wait_s, n, data in (("warm", 5.0, 1, small), ("one", 5.0, 1, png), ("eight", 10.0, 8, png), ("refused", 10.0, 8, huge)):  # fmt: skip
        if stop.wait(wait_s):
            return
        phases.append((phase, time.monotonic()))
        threads = [threading.Thread(target=one, args=(data,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    phases.append(("end", time.monotonic()))


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run(condition: str, clip: Path, model: Path, work: Path) -> dict[str, Any]:
    """One whole-clip run of edge; frames/s from its --stats-json, RSS sampled from /proc."""
    port = free_port()
    config = work / f"{condition}.yaml"
    web = f"web:\n  port: {port}\n" if condition != "off" else ""
    config.write_text(
        f"recognize:\n  model: {model}\nunknown_faces:\n  dir: {work / 'unknown'}\n{web}"
    )
    stats_path = work / f"{condition}-stats.json"
    cmd = [sys.executable, "-m", "edge", "--config", str(config), "--source", str(clip),
           "--every-frame", "--sink", "stdout", "--stats-json", str(stats_path)]  # fmt: skip
    stop = threading.Event()
    counts: dict[str, Any] = {"bytes": 0, "status_pages": 0, "pages": 0, "uploads": 0, "phases": []}  # fmt: skip
    client = {"open": _viewer, "pages": _pages, "uploads": _uploads}.get(condition)
    t0, cpu0 = time.perf_counter(), _children_cpu_s()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if client is not None:
        threading.Thread(target=client, args=(port, stop, counts), daemon=True).start()
    samples, timeline = [], []
    while proc.poll() is None:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            samples.append(rss)
            timeline.append((time.monotonic(), rss))
        time.sleep(0.1 if condition == "uploads" else 0.25)
    wall = time.perf_counter() - t0
    cpu = _children_cpu_s() - cpu0  # poll() reaped it: its CPU time is in the children's
    stop.set()
    if proc.returncode != 0:
        raise SystemExit(
            f"error: edge failed ({condition}):\n{proc.stderr.read().decode()[-2000:]}"
        )
    stats = json.loads(stats_path.read_text())
    return {
        "condition": condition,
        "fps": stats["fps"],
        "frames": stats["frames_processed"],
        "loop_wall_s": stats["wall_s"],
        "cpu_ms_per_frame": round(cpu * 1000 / max(1, stats["frames_processed"]), 2),
        "process_wall_s": round(wall, 2),
        "rss_peak_mb": round(max(samples), 1) if samples else None,
        "rss_median_mb": round(sorted(samples)[len(samples) // 2], 1) if samples else None,
        "stream_mb": round(counts["bytes"] / 1e6, 1),
        "status_pages": counts["status_pages"],
        "live_pages": counts["pages"],
        "uploads": counts["uploads"],
        "upload_phases_mb": _phase_peaks(counts["phases"], timeline),
    }


def _phase_peaks(phases: list[tuple[str, float]], timeline: list[tuple[float, float]]) -> dict:
    """Peak RSS in each upload phase, and before the first (MB)."""
    if not phases:
        return {}
    out = {"before": max((r for t, r in timeline if t < phases[0][1]), default=None)}
    ends = [t for _, t in phases[1:]] + [float("inf")]
    for (name, start), end in zip(phases, ends, strict=True):
        if name != "end":
            out[name] = max((r for t, r in timeline if start <= t < end + 1.0), default=None)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", help="video to run (default: the 20-visit doorbell clip, built)")
    p.add_argument("--model", help="faces.tflite (default: models/ or the tests' cached model)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved runs per condition")
    p.add_argument("--out", default="web.json", help="result file in bench/results")
    p.add_argument(
        "--only",
        help=f"comma-separated conditions (of {', '.join(CONDITIONS)}; off and idle always run)",
    )
    args = p.parse_args()
    conditions = CONDITIONS
    if args.only:
        wanted = {"off", "idle", *args.only.split(",")}
        if not wanted <= set(CONDITIONS):
            raise SystemExit(
                f"error: --only: unknown condition(s) {sorted(wanted - set(CONDITIONS))}"
            )
        conditions = tuple(c for c in CONDITIONS if c in wanted)
    model = find_model(args.model)
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        work = Path(tmp)
        if args.clip:
            clip = Path(args.clip).resolve()
        else:
            make_clip(DATA, work / "clip", visits=20, seed=0)
            clip = work / "clip" / "clip.mp4"
        runs = []
        for i in range(args.repeats):
            for condition in conditions:
                r = run(condition, clip, model, work)
                r["repeat"] = i
                runs.append(r)
                print(f"  {condition:5s} run {i + 1}: {r['fps']:.1f} frames/s, RSS peak {r['rss_peak_mb']} MB", file=sys.stderr)  # fmt: skip
    summary = {}
    for c in conditions:
        mine = [r for r in runs if r["condition"] == c]
        summary[c] = {
            "fps_mean": round(sum(r["fps"] for r in mine) / len(mine), 2),
            "cpu_ms_per_frame": round(sum(r["cpu_ms_per_frame"] for r in mine) / len(mine), 2),
            "rss_peak_mb": max(r["rss_peak_mb"] for r in mine),
            "rss_median_mb": round(sum(r["rss_median_mb"] for r in mine) / len(mine), 1),
        }
    base = summary["off"]["fps_mean"]
    base_cpu = summary["off"]["cpu_ms_per_frame"]
    for c in conditions:
        summary[c]["fps_ratio"] = round(summary[c]["fps_mean"] / base, 3)
        summary[c]["cpu_ratio"] = round(summary[c]["cpu_ms_per_frame"] / base_cpu, 3)
    print(
        f"\nclip {clip.name}, {runs[0]['frames']} frames, --every-frame, {args.repeats} runs each\n"
    )
    print("| web app | frames/s (mean) | ratio to off | CPU ms/frame | ratio to off | peak RSS MB | median RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for c in conditions:
        s = summary[c]
        print(f"| {c} | {s['fps_mean']} | {s['fps_ratio']} | {s['cpu_ms_per_frame']} | {s['cpu_ratio']} | {s['rss_peak_mb']} | {s['rss_median_mb']} |")  # fmt: skip
    viewing = [c for c in ("idle", "open", "pages") if c in summary]
    worst = min(summary[c]["fps_ratio"] for c in viewing)
    worst_cpu = max(summary[c]["cpu_ratio"] for c in viewing)
    up = summary.get("uploads")
    if up is not None:
        up["rss_peak_over_idle_mb"] = round(up["rss_peak_mb"] - summary["idle"]["rss_peak_mb"], 1)
        up["fps_ratio_to_idle"] = round(up["fps_mean"] / summary["idle"]["fps_mean"], 3)
        up["phases_mb"] = [r["upload_phases_mb"] for r in runs if r["condition"] == "uploads"]
    verdict = "met" if worst >= 1 - LIMIT else "NOT met"
    print(
        f"\nbudget (at most {LIMIT:.0%} fewer frames/s): {verdict}, worst frames/s ratio {worst}; "
        f"worst CPU-per-frame ratio {worst_cpu} (the watched stream's JPEGs are CPU of the "
        "same process, on another thread)"
    )
    if up is not None:
        print(
            "uploads (a 2048x2048 photo, one PNG of the most pixels allowed, eight at once, eight "
            f"6000x6000 refused): peak RSS {up['rss_peak_over_idle_mb']:+} MB over idle, frames/s "
            f"{up['fps_ratio_to_idle']} of idle; peak RSS MB per phase: {up['phases_mb']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "clip": str(clip.name),
        "model": str(model),
        "runs": runs,
        "summary": summary,
        "budget_met": worst >= 1 - LIMIT,
        "note": "frames/s on a shared machine: compare the interleaved runs' spread",
    }
    (RESULTS / args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS / args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
