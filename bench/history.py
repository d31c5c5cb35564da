"""Event history benchmark: the loop with and without it, side by side, and 10,000 events on disk.

    .venv/bin/python bench/history.py [--model FILE] [--visits 20] [--rounds 2] [--events 10000]

1. `python -m edge --every-frame` on the generated doorbell clip with history off, on, and on
   with full frames, alternating (--rounds each): FPS, the loop's CPU ms per frame (its stages),
   the process's CPU ms per frame (the history writer thread included), events kept.
2. 10,000 events built from that run's real events (crops, frames, reasons), their times laid
   out at the clip's pace of events (repeated until 10,000): handed over to History.add as
   fast as the clip's own event bursts allow (--rate per second), then closed. The time add()
   takes on the loop's thread, how long until all are on disk, bytes per event (crops only,
   and with full frames), and the query time of one day's events: HistoryReader.events and the
   Events page and /api/events over HTTP (median of 20).
Prints tables; writes bench/results/history.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import DATA, RESULTS, find_model, row, run_edge  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.history import History, HistoryReader  # noqa: E402
from tests.doorbell import make_clip  # noqa: E402

SETTINGS = {
    "off": "history:\n  enabled: false\n",
    "on": "",
    "on+frames": "history:\n  full_frame: true\n",
}


def loop_side_by_side(model: Path, clip: Path, work: Path, rounds: int) -> list[dict[str, Any]]:
    """Each setting `rounds` times, alternating, on the whole clip (--every-frame)."""
    rows = []
    for r in range(rounds):
        for name, extra in SETTINGS.items():
            db = work / f"history-{name}-{r}" / "events.db"
            config = work / f"{name}.yaml"
            config.write_text(
                f"recognize:\n  model: {model}\nunknown_faces:\n  enabled: false\n"
                + (extra or "history:\n")
                + f"  path: {db}\n"
            )
            out = run_edge(config, clip, ["--every-frame"], work)
            line = row(name, clip.parent.name, "every", out)
            frames = max(1, line["frames_processed"])
            cpu_s = line["cpu_percent"] / 100 * out["stats"]["process_wall_s"]
            line["process_cpu_ms_per_frame"] = round(1000 * cpu_s / frames, 2)
            line["kept"] = len(HistoryReader(db).events(limit=100_000)) if name != "off" else 0
            line["db"] = str(db)
            rows.append(line)
            print(
                f"{name:<10} round {r}: {line['fps']:6.1f} fps, loop {line['loop_cpu_ms_per_frame']:.2f} "
                f"CPU ms/frame, process {line['process_cpu_ms_per_frame']:.2f} CPU ms/frame, "
                f"{line['events']} events, {line['kept']} kept",
                flush=True,
            )
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for name in SETTINGS:
        mine = [r for r in rows if r["setting"] == name]
        out[name] = {
            k: round(float(np.median([r[k] for r in mine])), 2)
            for k in ("fps", "loop_cpu_ms_per_frame", "process_cpu_ms_per_frame")
        }
    return out


def fill(source_db: Path, out_db: Path, n: int, rate: float, full_frame: bool) -> dict[str, Any]:
    """`n` events made from those in `source_db`, times at their pace ending now."""
    real = HistoryReader(source_db)
    found = list(reversed(real.events(limit=100_000)))
    blobs = [(real.snapshot(e["id"]), real.frame(e["id"])) for e in found]
    gaps = np.diff([e["source_time"] for e in found]) if len(found) > 1 else np.array([10.0])
    pace = float(np.mean(gaps)) if len(gaps) else 10.0  # seconds between events in the clip
    cfg = load_config(None, {"history.path": str(out_db), "history.full_frame": full_frame,
                             "history.keep_days": 3650, "history.max_mb": 100_000})  # fmt: skip
    h = History(cfg.history, "door")
    start = time.time() - n * pace * 3  # clip pace, with a quiet gap twice as long between clips
    t, add_us = start, []
    t0 = time.perf_counter()
    for i in range(n):
        src = found[i % len(found)]
        t += float(gaps[i % len(gaps)]) if i % len(found) else 2 * pace * len(found)
        event = {k: v for k, v in src.items() if k not in ("id", "camera", "why", "snapshot", "frame_image")}  # fmt: skip
        event["time"] = t
        crop, frame = blobs[i % len(blobs)]
        a = time.perf_counter()
        h.add(event, src["why"], crop, frame)
        add_us.append((time.perf_counter() - a) * 1e6)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    handed = time.perf_counter() - t0
    h.close()
    written = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in out_db.parent.iterdir() if p.name.startswith(out_db.name))
    return {
        "events": n,
        "written": h.written,
        "dropped": h.dropped,
        "clip_events": len(found),
        "clip_pace_s": round(pace, 2),
        "time_span_days": round((t - start) / 86400, 1),
        "full_frame": full_frame,
        "rate_per_s": rate,
        "handed_s": round(handed, 2),
        "on_disk_s": round(written, 2),
        "add_us": {
            "median": round(float(np.median(add_us)), 1),
            "p99": round(float(np.percentile(add_us, 99)), 1),
            "max": round(float(np.max(add_us)), 1),
        },  # fmt: skip
        "bytes": size,
        "bytes_per_event": round(size / n),
        "last_time": t,
    }


def _timed(fn: Any, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        a = time.perf_counter()
        fn()
        times.append(time.perf_counter() - a)
    return round(1000 * float(np.median(times)), 2)


def queries(db: Path, day_time: float) -> dict[str, Any]:
    """Median ms to list one day's events: the reader, the Events page, /api/events."""
    from edge.web.server import WebApp

    day = datetime.fromtimestamp(day_time).strftime("%Y-%m-%d")
    reader = HistoryReader(db)
    n_day = len(reader.events(limit=100_000, day=day))
    cfg = load_config(None, {"history.path": str(db), "web.port": 0, "recognize.model": ""})
    os.environ.pop(cfg.web.password_env, None)
    app = WebApp(cfg)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)

    def get(path: str) -> None:
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{app.port}"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (path, r.status)

    try:
        out = {
            "day": day,
            "events_that_day": n_day,
            "reader_100_ms": _timed(lambda: reader.events(limit=100, day=day)),
            "reader_all_ms": _timed(lambda: reader.events(limit=100_000, day=day)),
            "events_page_ms": _timed(lambda: get(f"/events?day={day}")),
            "api_1000_ms": _timed(lambda: get(f"/api/events?day={day}&limit=1000")),
            "events_page_person_ms": _timed(lambda: get(f"/events?day={day}&person=unknown")),
        }
    finally:
        conn.close()
        app.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="faces.tflite to use (default: see bench/pipeline.py)")
    p.add_argument("--visits", type=int, default=20, help="doorbell clip visits")
    p.add_argument("--rounds", type=int, default=2, help="runs of each setting, alternating")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=200.0, help="events handed over per second")
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / "history-work"
    work.mkdir(exist_ok=True)
    model = find_model(args.model)
    clip_dir = work / f"doorbell-{args.visits}"
    if not (clip_dir / "clip.mp4").is_file():
        make_clip(DATA, clip_dir, visits=args.visits, seed=0)
    rows = loop_side_by_side(model, clip_dir / "clip.mp4", work, args.rounds)
    summary = _summary(rows)
    print("\nmedian over rounds (doorbell clip, --every-frame):")
    print(f"{'history':<10} {'fps':>7} {'loop CPU ms/frame':>18} {'process CPU ms/frame':>21}")
    for name, s in summary.items():
        print(f"{name:<10} {s['fps']:>7.1f} {s['loop_cpu_ms_per_frame']:>18.2f} {s['process_cpu_ms_per_frame']:>21.2f}")  # fmt: skip
    ratios = {
        name: {k: round(s[k] / summary["off"][k], 3) for k in s} for name, s in summary.items()
    }
    print(f"ratios to off: {json.dumps(ratios)}")

    source = Path(next(r["db"] for r in rows if r["setting"] == "on+frames"))
    fills = {}
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for full in (False, True):
            db = Path(tmp) / ("frames" if full else "crops") / "events.db"
            f = fill(source, db, args.events, args.rate, full)
            fills["with_frames" if full else "crops_only"] = f
            print(
                f"\n{args.events} events ({'crops and full frames' if full else 'crops'}), "
                f"times at the clip's pace ({f['clip_events']} events, one per {f['clip_pace_s']} s "
                f"of clip) over {f['time_span_days']} days; handed over at {args.rate:.0f}/s: "
                f"add() median {f['add_us']['median']} us, p99 {f['add_us']['p99']} us, max "
                f"{f['add_us']['max']} us; all on disk {f['on_disk_s']} s after the first; "
                f"{f['bytes'] / 1e6:.1f} MB, {f['bytes_per_event']} bytes per event; "
                f"dropped {f['dropped']}",
                flush=True,
            )
            if not full:
                q = queries(db, f["last_time"] - 43200)
                f["queries"] = q
                print(f"one day ({q['day']}, {q['events_that_day']} events), median ms: {json.dumps(q)}")  # fmt: skip
    result = {
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "clip": f"doorbell-{args.visits} (tests/doorbell.py seed 0)",
        "runs": rows,
        "summary": summary,
        "ratios_to_off": ratios,
        "fill": fills,
    }
    (RESULTS / "history.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {RESULTS / 'history.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
