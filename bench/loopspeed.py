"""The live loop against face_recognition (HOG on half-size frames) on whole doorbell clips.

    .venv/bin/python bench/loopspeed.py [--clips door closeup] [--model FILE] [--baseline DIR]

Side by side in one run, per clip (tests/doorbell.py, 20 visits; `closeup` = zoom 2): our
`python -m edge --every-frame` with the default config and the trained test model, then
bench/peers.py's face_recognition worker (decode, resize to 1/2, HOG, encode, label every
frame; .venv-peers from bench/setup-peers.sh), then ours again; the better of our two runs
counts. --baseline DIR (a checkout of older code, e.g. `git worktree add DIR COMMIT`) runs
that code's loop beside ours (before face_recognition and after it). Frames per wall second
and per CPU second (process CPU time, model loading excluded on both sides). Prints a table;
writes bench/results/loopspeed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import PEERS_PY, WORK, load_inputs, run_worker  # noqa: E402
from bench.pipeline import CLIPS, DATA, RESULTS, ROOT, find_model, run_edge  # noqa: E402
from tests.doorbell import make_clip  # noqa: E402


def ours(config: Path, clip: Path, work: Path, root: Path = ROOT) -> dict:
    """One whole-clip run of the loop in `root`: frames/s by wall and by CPU (all stages)."""
    s = run_edge(config, clip, ["--every-frame"], work, root)["stats"]
    cpu = sum(t["cpu_s"] for t in s["totals"].values())
    n = s["frames_processed"]
    return {"frames": n, "fps": s["fps"], "cpu_fps": round(n / cpu, 1) if cpu else None}


def report(rows: list[dict]) -> None:
    """Print the table so far and write the JSON."""
    print(f"{'clip':<9} {'frames':>6} {'ours fps':>14} {'ours CPU fps':>12} {'f_r fps':>8} "
          f"{'f_r CPU fps':>11} {'x wall':>7} {'x CPU':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['clip']:<9} {r['frames']:>6} {str(r['ours_fps']):>14} {r['ours_cpu_fps']:>12} "
              f"{r['face_recognition_fps']:>8} {r['face_recognition_cpu_fps']:>11} "
              f"{r['ratio_wall']:>7} {r['ratio_cpu']:>6}")  # fmt: skip
        if "baseline_cpu_fps" in r:
            print(f"{'  baseline':<9} {r['frames']:>6} {str(r['baseline_fps']):>14} "
                  f"{r['baseline_cpu_fps']:>12} {'':>8} {'':>11} {r['baseline_ratio_wall']:>7} "
                  f"{r['baseline_ratio_cpu']:>6}")  # fmt: skip
    print(f"load average at the end: {os.getloadavg()}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "loopspeed.json").write_text(
        json.dumps({"rows": rows, "load_avg_at_end": os.getloadavg()}, indent=1) + "\n"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["door"], choices=list(CLIPS))
    ap.add_argument("--model", help="faces.tflite (default: bench/pipeline.py's find_model)")
    ap.add_argument("--baseline", type=Path, help="a checkout of older code to run beside ours")
    args = ap.parse_args()
    if not PEERS_PY.exists():
        print("error: no .venv-peers (run bench/setup-peers.sh)", file=sys.stderr)
        return 2
    model = find_model(args.model)
    work = RESULTS / "loopspeed-work"
    work.mkdir(parents=True, exist_ok=True)
    config = work / "default.yaml"
    config.write_text(f"recognize:\n  model: {model}\nunknown_faces:\n  enabled: false\n")
    WORK.mkdir(parents=True, exist_ok=True)  # run_worker's spec files
    gallery = load_inputs(DATA)["gallery"]
    rows = []
    for name in args.clips:
        zoom, ir = CLIPS[name]
        clip_dir = work / f"doorbell-20-{name}"
        if not (clip_dir / "timeline.json").is_file():
            make_clip(DATA, clip_dir, visits=20, seed=0, zoom=zoom, ir=ir)
        clip = clip_dir / "clip.mp4"
        a = ours(config, clip, work)
        old = [ours(config, clip, work, args.baseline)] if args.baseline else []
        fr = run_worker(
            "face_recognition", "video", {"video": str(clip), "scale": 0.5, "gallery": gallery}
        )
        b = ours(config, clip, work)
        old += [ours(config, clip, work, args.baseline)] if args.baseline else []
        best = max(a, b, key=lambda r: r["fps"])
        fr_fps = round(fr["frames"] / fr["wall_s"], 1)
        fr_cpu_fps = round(1000 / fr["cpu_ms_per_frame"], 1)
        rows.append({"clip": name, "frames": best["frames"], "ours_fps": [a["fps"], b["fps"]],
                     "ours_cpu_fps": best["cpu_fps"], "face_recognition_fps": fr_fps,
                     "face_recognition_cpu_fps": fr_cpu_fps,
                     "ratio_wall": round(best["fps"] / fr_fps, 1),
                     "ratio_cpu": round(best["cpu_fps"] / fr_cpu_fps, 1)})  # fmt: skip
        if old:
            base = max(old, key=lambda r: r["fps"])
            rows[-1] |= {"baseline_fps": [r["fps"] for r in old],
                         "baseline_cpu_fps": base["cpu_fps"],
                         "baseline_ratio_wall": round(base["fps"] / fr_fps, 1),
                         "baseline_ratio_cpu": round(base["cpu_fps"] / fr_cpu_fps, 1)}  # fmt: skip
        report(rows)  # after each clip: a long run keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
