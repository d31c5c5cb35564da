"""A photo library at scale: `convert scan` and `find` on N generated photos (default 10,000).

    .venv/bin/python bench/library_scale.py [--photos 10000] [--jobs 1 2] [--model FILE]

The photos are made from ../shared/data ($EDGE_TEST_DATA): every photo of faces/,
detection/ and no_face/ in turn, each time randomly cropped (70-100 % of each side), scaled
(0.5-1.5x), maybe mirrored, rotated (-20..20 degrees) and saved as JPEG (quality 70-95):
different pixels, not copies. They go to a temp folder (never into the project) that is
deleted at the end. Per --jobs value, a scan into a fresh index: photos/s and photos/s per
worker; the RSS of the scan and its workers sampled every 2 s (flat or growing); then a
rescan of the finished index (what a resume costs when nothing is left), and a scan
interrupted (SIGINT) halfway and resumed: the resumed part's time. `find NAME` latency over
the known people on the full index. Prints tables; writes bench/results/library-scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import find_model  # noqa: E402
from edge.progress import progress  # noqa: E402
from tests.splits import known  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"


def sources() -> list[Path]:
    """Every photo the library is made from."""
    out = sorted((DATA / "faces").glob("*/*.jpg"))
    for folder in ("detection", "no_face"):
        out += sorted(p for p in (DATA / folder).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    return out


def variant(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """A new photo from `image`: crop, scale, maybe mirror, rotate."""
    h, w = image.shape[:2]
    cw, ch = round(w * rng.uniform(0.7, 1.0)), round(h * rng.uniform(0.7, 1.0))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    s = rng.uniform(0.5, 1.5)
    out = cv2.resize(out, (max(16, round(cw * s)), max(16, round(ch * s))))
    if rng.random() < 0.5:
        out = cv2.flip(out, 1)
    oh, ow = out.shape[:2]
    m = cv2.getRotationMatrix2D((ow / 2, oh / 2), rng.uniform(-20, 20), 1.0)
    return cv2.warpAffine(out, m, (ow, oh), borderMode=cv2.BORDER_REFLECT)


def build(folder: Path, n: int, seed: int = 0) -> None:
    """n generated photos in folder/NNN/ (100 per subfolder, like an album tree)."""
    rng = random.Random(seed)
    srcs = sources()
    images = {p: cv2.imread(str(p), cv2.IMREAD_COLOR) for p in srcs}
    for i in progress(range(n), desc="make photos", unit="photo"):
        src = srcs[i % len(srcs)]
        out = folder / f"{i // 100:03d}" / f"{src.stem}-{i}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), variant(images[src], rng),
                    [cv2.IMWRITE_JPEG_QUALITY, rng.randint(70, 95)])  # fmt: skip


def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (MB), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024.0


def scan(photos: Path, index: Path, model: Path, jobs: int, stop_after: float = 0) -> dict:
    """One `convert scan`; RSS every 2 s; SIGINT after `stop_after` s when given."""
    cmd = [sys.executable, "-m", "convert", "scan", str(photos), "--index", str(index),
           "--model", str(model), "--jobs", str(jobs)]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            samples.append((round(time.monotonic() - t0, 1), round(_tree_rss_mb(proc.pid), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if stop_after:
        try:
            proc.wait(timeout=stop_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    report = json.loads(out) if out.strip() else {}
    return {"wall_s": round(time.monotonic() - t0, 2), "exit": proc.returncode,
            "report": report, "rss_mb": samples}  # fmt: skip


def find_latency(index: Path, names: list[str]) -> dict:
    """Wall ms of `convert find NAME` (whole command) per known person."""
    ms = []
    for name in names:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "convert", "find", name, "--index", str(index)],
                       cwd=ROOT, capture_output=True, check=False)  # fmt: skip
        ms.append(1000 * (time.monotonic() - t0))
    return {"median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
            "people": len(names)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=10000)
    ap.add_argument(
        "--jobs", type=int, nargs="+", default=list(range(1, (os.cpu_count() or 1) + 1))
    )
    ap.add_argument("--model", help="faces.tflite (default: bench/pipeline.py's find_model)")
    args = ap.parse_args()
    model = find_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-library-scale-"))
    try:
        photos = work / "photos"
        build(photos, args.photos)
        rows = []
        for jobs in args.jobs:
            index = work / f"index-{jobs}.db"
            full = scan(photos, index, model, jobs)
            rep = full["report"]
            rss = [m for _, m in full["rss_mb"]]
            again = scan(photos, index, model, jobs)
            rows.append({"jobs": jobs, "scanned": rep.get("scanned"), "faces": rep.get("faces"),
                         "seconds": rep.get("seconds"), "photos_per_s": rep.get("photos_per_s"),
                         "photos_per_s_per_worker": round(rep.get("photos_per_s", 0) / jobs, 2),
                         "rss_mb_first_quarter": round(statistics.mean(rss[: max(1, len(rss) // 4)]), 1) if rss else None,
                         "rss_mb_last_quarter": round(statistics.mean(rss[-max(1, len(rss) // 4):]), 1) if rss else None,
                         "rss_mb_max": max(rss) if rss else None, "rss_samples": full["rss_mb"],
                         "rescan_s": again["wall_s"]})  # fmt: skip
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "rss_samples"}), flush=True)
        jobs = args.jobs[-1]
        part = work / "part.db"
        half = rows[-1]["seconds"] / 2 if rows[-1]["seconds"] else 30
        stopped = scan(photos, part, model, jobs, stop_after=half)
        resumed = scan(photos, part, model, jobs)
        resume = {"interrupted_after_s": round(half, 1), "exit": stopped["exit"],
                  "indexed_before": stopped["report"].get("scanned"),
                  "resumed_scanned": resumed["report"].get("scanned"),
                  "resumed_skipped": resumed["report"].get("skipped"),
                  "resumed_wall_s": resumed["wall_s"]}  # fmt: skip
        find = find_latency(work / f"index-{args.jobs[-1]}.db", known(DATA / "faces"))
        print(json.dumps(resume))
        print(json.dumps(find))
        print(f"load average at the end: {os.getloadavg()}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "library-scale.json").write_text(json.dumps(
            {"photos": args.photos, "scans": rows, "resume": resume, "find": find,
             "load_avg_at_end": os.getloadavg()}, indent=1) + "\n")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
