"""Pipeline benchmark: the whole loop (`python -m edge`) on real videos and the doorbell clip.

    .venv/bin/python bench/pipeline.py [--model FILE] [--skip-videos] [--soak-minutes 10]
        [--baseline DIR]

Per run: frames read/processed/dropped, FPS, per-stage ms (median, p95), CPU % and peak RSS
of the process (os.wait4), the loop's CPU ms per frame and how many frames ran detection; the
whole videos run with the default and with detection on every frame, side by side. On the
generated 20-visit doorbell clip also event precision and recall, and in --realtime runs the
appear-to-event delay (from the frame where the face is wholly in view, source clock, to the
event's wall time) and the leave-to-`left` delay (from the visit's last frame to its `left`).
--soak-minutes loops the doorbell clip in one process and reports RSS at the start and end.
--baseline DIR (a checkout of older code, e.g. `git worktree add DIR COMMIT`) runs each video
and clip on it too, right after ours: old and new side by side, rows marked "old".
Prints tables; writes bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.progress import progress  # noqa: E402
from tests.doorbell import make_clip, score_events  # noqa: E402
from tests.splits import make_train_dataset  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
STAGES = ("capture", "detect", "track", "recognize", "publish")
# name -> config overrides (YAML text appended to the base config)
SETTINGS = {
    "default": "",
    "every-1st": "detect:\n  every_n_frames: 1\n",
    "every-3rd": "detect:\n  every_n_frames: 3\n",
    "every-5th": "detect:\n  every_n_frames: 5\n",
    "every-8th": "detect:\n  every_n_frames: 8\n",
    "blazeface": "detect:\n  method: dnn\n  confirmer: blazeface\n",
}
# doorbell clip versions (tests/doorbell.py): name -> (zoom, infrared)
CLIPS = {
    "door": (1.0, False),
    "closeup": (2.0, False),
    "closer": (3.0, False),
    "far": (0.5, False),
    "ir": (1.0, True),
}


def existing_model(arg: str | None) -> Path | None:
    """--model, else models/faces.tflite, else the newest model the tests cached, else None."""
    if arg:
        return Path(arg).resolve()
    if (ROOT / "models" / "faces.tflite").is_file():
        return ROOT / "models" / "faces.tflite"
    cache = Path(os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-faces-tests"))
    cached = sorted(cache.glob("model-*/faces.tflite"), key=lambda p: p.stat().st_mtime)
    return cached[-1] if cached else None


def find_model(arg: str | None) -> Path:
    """existing_model(arg), else one trained now on the known people."""
    found = existing_model(arg)
    if found is not None:
        return found
    out = RESULTS / "model"
    if not (out / "faces.tflite").is_file():
        print("training a face model on the known people (tests/splits.py) ...", file=sys.stderr)
        dataset = make_train_dataset(DATA / "faces", RESULTS / "dataset")
        subprocess.run(
            [sys.executable, "-m", "convert", "train", str(dataset), "--out", str(out)],
            cwd=ROOT,
            check=True,
        )
    return out / "faces.tflite"


def run_edge(
    config: Path, source: Path, extra: list[str], workdir: Path, root: Path = ROOT
) -> dict[str, Any]:
    """One `python -m edge` run of the code in `root`: its stats, events, CPU % and peak RSS."""
    stats_path = workdir / "stats.json"
    stats_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "edge", "--config", str(config), "--source", str(source)]
    cmd += ["--stats-json", str(stats_path), *extra]
    t0 = time.perf_counter()
    with open(workdir / "events.jsonl", "w") as out, open(workdir / "stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, cwd=root, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (workdir / "stderr.log").read_text()[-1500:]
        raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    stats = json.loads(stats_path.read_text())
    events = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    stats["cpu_percent"] = round(100.0 * (usage.ru_utime + usage.ru_stime) / wall, 1)
    stats["peak_rss_mb"] = round(usage.ru_maxrss / 1024.0, 1)
    stats["process_wall_s"] = round(wall, 2)
    return {"stats": stats, "events": events}


def _arrivals(events: list[dict], visit: dict) -> list[dict]:
    """The events (not `left`) that fall within one visit's frames."""
    return [
        e
        for e in events
        if e["type"] != "left" and visit["first_frame"] <= e["frame"] <= visit["last_frame"]
    ]


def appear_delays(events: list[dict], timeline: dict, t0: float) -> list[float]:
    """Seconds from the frame where a visitor's face is wholly in view (source clock) to the
    arrival event."""
    fps = timeline["fps"]
    out = []
    for v in timeline["visits"]:
        arrivals = _arrivals(events, v)
        if arrivals:
            start = v["face_frame"] if v.get("face_frame") is not None else v["first_frame"]
            out.append(arrivals[0]["time"] - (t0 + start / fps))
    return out


def left_delays(events: list[dict], timeline: dict, t0: float) -> list[float]:
    """Seconds from a visit's last frame (source clock) to the `left` of its visit id."""
    fps = timeline["fps"]
    out = []
    for v in timeline["visits"]:
        arrivals = _arrivals(events, v)
        if not arrivals:
            continue
        left = [e for e in events if e["type"] == "left" and e["visit"] == arrivals[0]["visit"]]
        if left:
            out.append(left[0]["time"] - (t0 + (v["last_frame"] + 1) / fps))
    return out


def _median_p95(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "p95": None, "count": 0}
    return {
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "count": len(values),
    }


def _ms(stage: dict) -> str:
    med, p95 = stage["median_ms"], stage["p95_ms"]
    return "-" if med is None else f"{med:.1f}/{p95:.1f}"


def row(name: str, source: str, mode: str, r: dict[str, Any], code: str = "new") -> dict[str, Any]:
    s = r["stats"]
    out = {
        "code": code,
        "setting": name,
        "source": source,
        "mode": mode,
        **{k: s[k] for k in ("frames_read", "frames_processed", "frames_dropped", "fps")},
        "wall_s": s["wall_s"],
        "cpu_percent": s["cpu_percent"],
        "peak_rss_mb": s["peak_rss_mb"],
        "stages": s["stages"],
        "stages_cpu": s.get("stages_cpu", {}),
        "recognize_per_crop": s.get("recognize_per_crop"),
        "track_latency_s": s["latency_s"],
        "events": len(r["events"]),
        "detect_frames": s["totals"]["detect"]["runs"],
        "loop_cpu_ms_per_frame": round(
            1000 * sum(t["cpu_s"] for t in s["totals"].values()) / max(1, s["frames_processed"]),
            2,
        ),
    }
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'code':<4} {'setting':<10} {'source':<24} {'mode':<9} {'read':>5} {'proc':>5} {'drop':>5} "
        f"{'fps':>6} {'cpu%':>5} {'rssMB':>6} "
        + " ".join(f"{s[:5] + ' ms':>11}" for s in STAGES)
        + f" {'P':>5} {'R':>5} {'delay s':>11}"
    )
    print(head)
    for r in rows:
        sc = r.get("score", {})
        delay = r.get("appear_delay_s")
        print(
            f"{r['code']:<4} {r['setting']:<10} {r['source'][:24]:<24} {r['mode']:<9} "
            f"{r['frames_read']:>5} "
            f"{r['frames_processed']:>5} {r['frames_dropped']:>5} {r['fps']:>6.1f} "
            f"{r['cpu_percent']:>5.0f} {r['peak_rss_mb']:>6.0f} "
            + " ".join(f"{_ms(r['stages'][s]):>11}" for s in STAGES)
            + f" {sc.get('precision', ''):>5} {sc.get('recall', ''):>5} "
            + (f"{delay['median']:.2f}/{delay['p95']:.2f}" if delay else "")
        )


# --- soak: the clip looped in one process ----------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def soak(config: Path, clip: Path, minutes: float) -> dict[str, Any]:
    """Loop the clip in-process for `minutes`, paced like a camera; sample RSS every 10 s."""
    from edge.capture import Source, open_source
    from edge.config import load_config
    from edge.outputs import build_outputs
    from edge.pipeline import Loop

    cfg = load_config(config, {"camera.source": str(clip)})

    class Looped(Source):
        """The clip again and again, on one continuous source clock."""

        def __init__(self) -> None:
            self.inner = open_source(cfg.camera, True, cfg.detect.downscale_width)
            self.name, self.fps, self.offset, self.passes = str(clip), self.inner.fps, 0, 1
            self._read_before = self._dropped_before = 0
            self.deadline = time.monotonic() + minutes * 60

        @property
        def frames_read(self) -> int:
            return self._read_before + self.inner.frames_read

        @property
        def frames_dropped(self) -> int:
            return self._dropped_before + self.inner.frames_dropped

        def read(self):
            if time.monotonic() >= self.deadline:
                return None
            frame = self.inner.read()
            if frame is None:
                self._read_before += self.inner.frames_read
                self._dropped_before += self.inner.frames_dropped
                self.offset = self._read_before
                self.inner = open_source(cfg.camera, True, cfg.detect.downscale_width)
                self.passes += 1
                frame = self.inner.read()
            frame.index += self.offset
            frame.source_time += self.offset / self.fps
            return frame

        def close(self) -> None:
            self.inner.close()

    args = argparse.Namespace(
        config=str(config), source=str(clip), preview=False, sink="stdout", realtime=True,
        every_frame=False, max_frames=None, stats_json=None,
    )  # fmt: skip
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the events are not needed here
    real_stdout, sys.stdout = sys.stdout, devnull
    try:
        loop = Loop(cfg, args, build_outputs(cfg, args))
        loop.source.close()
        loop.source = Looped()
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not done.wait(10.0):
                samples.append((round(time.monotonic() - t0, 1), round(_rss_mb(), 1)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = loop.run()
        done.set()
        sampler.join()
    finally:
        sys.stdout = real_stdout
        devnull.close()
    rss = [m for _, m in samples]
    first_min = [m for t, m in samples if t <= 60] or rss[:1]
    last_min = [m for t, m in samples if t >= samples[-1][0] - 60] or rss[-1:]
    return {
        "minutes": minutes,
        "exit_status": status,
        "passes": loop.source.passes,
        "frames_read": loop.source.frames_read,
        "frames_dropped": loop.source.frames_dropped,
        "frames_processed": loop.stats.frames_processed,
        "events": loop.stats.events,
        "rss_start_mb": round(float(np.mean(first_min)), 1),
        "rss_end_mb": round(float(np.mean(last_min)), 1),
        "rss_max_mb": max(rss) if rss else None,
        "samples": samples,
    }


def haar_reference(clip: Path, repeat: int = 30) -> dict[str, Any]:
    """Haar at 320x320, single thread, on a doorbell frame: the ruler for the Pi 4 figure."""
    import cv2

    cap = cv2.VideoCapture(str(clip))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = cap.read()
    cap.release()
    gray = cv2.cvtColor(cv2.resize(frame, (320, 320)), cv2.COLOR_BGR2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    times = []
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=3, minSize=(16, 16))
            times.append(time.perf_counter() - t0)
    finally:
        cv2.setNumThreads(threads)
    return {"haar_320_1thread_ms_median": round(float(np.median(times)) * 1000, 2),
            "haar_320_1thread_ms_min": round(float(np.min(times)) * 1000, 2)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="faces.tflite to use (default: see find_model)")
    p.add_argument("--visits", type=int, default=20, help="doorbell clip visits")
    p.add_argument("--skip-videos", action="store_true", help="only the doorbell clip")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--no-realtime", action="store_true", help="skip the --realtime runs")
    p.add_argument("--only-realtime", action="store_true", help="only the doorbell --realtime runs")
    p.add_argument(
        "--clips",
        nargs="+",
        default=["door"],
        choices=list(CLIPS),
        help="doorbell clip versions: door, closeup (zoom 2), closer (zoom 3), far (zoom 0.5), ir (night look)",
    )
    p.add_argument("--out", default="pipeline.json", help="result file in bench/results")
    p.add_argument("--baseline", type=Path, help="a checkout of older code to run beside ours")
    p.add_argument("--soak-minutes", type=float, default=0, help="looped run for RSS growth")
    p.add_argument(
        "--soak-only",
        action="store_true",
        help="only the soak, to bench/results/pipeline-soak.json",
    )
    args = p.parse_args()
    if not (DATA / "faces").is_dir():
        print(f"error: no test data at {DATA} (set EDGE_TEST_DATA)", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = RESULTS / ("pipeline-soak" if args.soak_only else "pipeline-work")
    work.mkdir(exist_ok=True)
    model = find_model(args.model)
    clips: dict[str, tuple[Path, dict]] = {}
    for version in args.clips:
        zoom, ir = CLIPS[version]
        suffix = "" if version == "door" else f"-{version}"
        clip_dir = work / f"doorbell-{args.visits}{suffix}"
        tl_path = clip_dir / "timeline.json"
        # (re)made when missing or written by an older generator (no zoom)
        if not tl_path.is_file() or '"zoom"' not in tl_path.read_text():
            make_clip(DATA, clip_dir, visits=args.visits, seed=0, zoom=zoom, ir=ir)
        clips[version] = (clip_dir / "clip.mp4", json.loads(tl_path.read_text()))
    clip, timeline = next(iter(clips.values()))

    configs = {}
    for name in args.settings:
        path = work / f"{name}.yaml"
        path.write_text(
            f"recognize:\n  model: {model}\nunknown_faces:\n  enabled: false\n" + SETTINGS[name]
        )
        configs[name] = path

    out_path = RESULTS / args.out
    if args.soak_only:  # its own file, so it can run beside (or after) the full benchmark
        s = soak(configs["default"], clip, args.soak_minutes)
        s["load_avg_at_end"] = os.getloadavg()
        (RESULTS / "pipeline-soak.json").write_text(json.dumps(s, indent=1))
        print(f"soak: {json.dumps({k: v for k, v in s.items() if k != 'samples'})}")
        return 0
    rows: list[dict[str, Any]] = []
    video_cfgs = {name: work / f"video-{name}.yaml" for name in ("default", "every-1st")}
    for name, path in video_cfgs.items():
        path.write_text(
            f"recognize:\n  model: {model}\nunknown_faces:\n  enabled: false\n" + SETTINGS[name]
        )
    codes = [("new", ROOT)] + ([("old", args.baseline.resolve())] if args.baseline else [])
    if not args.skip_videos:
        videos = sorted((DATA / "video").glob("*.mp4"))
        for video in progress(videos, desc="videos", unit="video"):
            for code, root in codes:
                for name, path in video_cfgs.items():  # side by side on the whole video
                    r = run_edge(path, video, ["--every-frame"], work, root)
                    rows.append(row(name, video.name, "every", r, code))
                    print_table(rows[-1:])
    runs = [(v, n, c) for v in clips for n, c in configs.items()]
    for version, name, config in progress(runs, desc="doorbell runs", unit="run"):
        clip_v, timeline_v = clips[version]
        source = f"doorbell-{args.visits}" + ("" if version == "door" else f"-{version}")
        modes = [] if args.only_realtime else [("every", ["--every-frame"])]
        if not args.no_realtime:
            modes.append(("realtime", ["--realtime"]))
        for (mode, extra), (code, root) in itertools.product(modes, codes):
            r = run_edge(config, clip_v, extra, work, root)
            tag = "" if code == "new" else f"-{code}"
            events_file = work / f"events-{version}-{name}-{mode}{tag}.jsonl"
            events_file.write_text("".join(json.dumps(e) + "\n" for e in r["events"]))
            out = row(name, source, mode, r, code)
            out["score"] = score_events(r["events"], timeline_v)
            if mode == "realtime":
                d = appear_delays(r["events"], timeline_v, r["stats"]["source_t0"])
                out["appear_delay_s"] = _median_p95(d)
                t0 = r["stats"]["source_t0"]
                out["left_delay_s"] = _median_p95(left_delays(r["events"], timeline_v, t0))
            rows.append(out)
            print_table(rows[-1:])
    print()
    print_table(rows)
    print(
        "\nCPU ms of the process per stage, median/p95 (contention-free cost); per crop: align+identify"
    )
    for r in rows:
        cpu = r["stages_cpu"]
        crop = r["recognize_per_crop"] or {}
        print(
            f"{r['code']:<4} {r['setting']:<10} {r['source'][:24]:<24} {r['mode']:<9} "
            + " ".join(f"{s[:5]}={_ms(cpu[s]) if s in cpu else '-':<11}" for s in STAGES)
            + f" crop={_ms(crop) if crop.get('count') else '-'} (n={crop.get('count', 0)})"
        )
    print("\nLoop CPU ms per frame (all stages, whole run), frames with detection:")
    by_source: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_source.setdefault(f"{r['source']} {r['mode']} {r['code']}", {})[r["setting"]] = r
    for key, runs in by_source.items():
        line = "  ".join(
            f"{name} {r['loop_cpu_ms_per_frame']:.1f} ms ({r['detect_frames']}/"
            f"{r['frames_processed']} detected)"
            for name, r in runs.items()
        )
        if "default" in runs and "every-1st" in runs:
            ratio = (
                runs["default"]["loop_cpu_ms_per_frame"]
                / runs["every-1st"]["loop_cpu_ms_per_frame"]
            )
            line += f"  default/every-1st {ratio:.2f}"
        print(f"{key:<38} {line}")
    for r in rows:
        if "score" in r:
            sc = r["score"]
            print(f"{r['code']} {r['setting']} {r['source']} {r['mode']}: P {sc['precision']} R {sc['recall']}, "
                  f"strangers named {sc['strangers_named']}, missed {sc['missed']}")  # fmt: skip
    for r in rows:
        if "left_delay_s" in r:
            a, lv = r["appear_delay_s"], r["left_delay_s"]
            print(f"{r['setting']} realtime: appear->event {a['median']} / {a['p95']} s (n={a['count']}), "
                  f"last frame->left {lv['median']} / {lv['p95']} s (n={lv['count']})")  # fmt: skip
    ref = haar_reference(clip)
    print(f"Pi reference: {ref}")
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_end": os.getloadavg(),
        },
        "model": str(model),
        "timeline": {k: timeline[k] for k in ("fps", "width", "height", "frames")},
        "visits": timeline["visits"],
        "clips": list(clips),
        "runs": rows,
        "pi_reference": ref,
    }
    if args.soak_minutes > 0:
        s = soak(configs["default"], clip, args.soak_minutes)
        result["soak"] = s
        print(
            f"\nsoak {s['minutes']} min: {s['passes']} passes, {s['frames_processed']} frames, "
            f"RSS start {s['rss_start_mb']} MB, end {s['rss_end_mb']} MB, max {s['rss_max_mb']} MB"
        )
    out_path.write_text(json.dumps(result, indent=1))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
