"""A photo library at scale: `convert scan` and `find` on N generated photos (default 10,000).

    .venv/bin/python bench/library_scale.py [--photos 10000] [--jobs 1 2] [--subset N]
                                            [--keep DIR] [--model FILE]

The photos are made from ../shared/data ($EDGE_TEST_DATA): every photo of faces/,
detection/ and no_face/ in turn, each time randomly cropped (70-100 % of each side), scaled
(0.5-1.5x), maybe mirrored, rotated (-20..20 degrees) and saved as JPEG (quality 70-95):
different pixels, not copies. They go to a temp folder (never into the project) that is
deleted at the end, or to --keep DIR, kept and reused by the next run. Per --jobs value, a
scan into a fresh index (--subset: the smaller --jobs values scan only the first N photos):
photos/s and photos/s per worker, the RSS of the scan and its workers sampled every 2 s
(first vs last quarter: flat or growing), then a rescan of the finished index. The last
--jobs value's scan is interrupted (SIGINT) once half the photos are indexed and resumed:
how many it kept and skipped, and how long the resumed scan took to start. `find NAME`
latency over the known people on that full index. Prints tables; writes
bench/results/library-scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
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


def _indexed(index: Path) -> int:
    """Photos recorded in an index being written (0 while it is not there yet)."""
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM photos").fetchone()[0]
    except sqlite3.Error:
        return 0


def scan(photos: Path, index: Path, model: Path, jobs: int, stop_at: int = 0) -> dict:
    """One `convert scan`; RSS every 2 s; SIGINT once `stop_at` photos are indexed, if given."""
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
            if stop_at and proc.poll() is None and _indexed(index) >= stop_at:
                proc.send_signal(signal.SIGINT)
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    report = json.loads(out) if out.strip() else {}
    return {"wall_s": round(time.monotonic() - t0, 2), "exit": proc.returncode,
            "report": report, "rss_mb": samples}  # fmt: skip


def subset(photos: Path, folder: Path, n: int) -> Path:
    """`folder` with links to the first `n` photos of `photos` (a smaller library, same mix)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in sorted(photos.glob("*/*.jpg"))[:n]:
        link = folder / p.parent.name / p.name
        link.parent.mkdir(exist_ok=True)
        if not link.exists():
            link.symlink_to(p)
    return folder


def _rss(samples: list[tuple[float, float]]) -> dict:
    rss = [m for _, m in samples]
    if not rss:
        return {}
    q = max(1, len(rss) // 4)
    return {"rss_mb_first_quarter": round(statistics.mean(rss[:q]), 1),
            "rss_mb_last_quarter": round(statistics.mean(rss[-q:]), 1),
            "rss_mb_max": max(rss), "rss_samples": samples}  # fmt: skip


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
    ap.add_argument("--subset", type=int, default=0,
                    help="scan only this many photos with the smaller --jobs values (time)")  # fmt: skip
    ap.add_argument("--keep", type=Path, help="build the photos here and keep them (reused)")
    ap.add_argument("--model", help="faces.tflite (default: bench/pipeline.py's find_model)")
    args = ap.parse_args()
    model = find_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-library-scale-"))
    try:
        photos = args.keep or work / "photos"
        if len(list(photos.glob("*/*.jpg"))) != args.photos:
            build(photos, args.photos)
        print(f"{args.photos} photos in {photos}; load {os.getloadavg()}", flush=True)
        rows = []
        for jobs in args.jobs:
            last = jobs == args.jobs[-1]
            n = args.photos if last or not args.subset else min(args.subset, args.photos)
            tree = photos if n == args.photos else subset(photos, work / f"subset-{n}", n)
            index = work / f"index-{jobs}.db"
            # the last --jobs value: SIGINT halfway, then the resumed scan finishes the index
            parts = [scan(tree, index, model, jobs, stop_at=n // 2 if last else 0)]
            if last:
                parts.append(scan(tree, index, model, jobs))
            scanned = sum(p["report"].get("scanned", 0) for p in parts)
            seconds = sum(p["report"].get("seconds", 0) for p in parts)
            again = scan(tree, index, model, jobs)
            row = {"jobs": jobs, "photos": n, "scanned": scanned,
                   "faces": sum(p["report"].get("faces", 0) for p in parts),
                   "seconds": round(seconds, 1),
                   "photos_per_s": round(scanned / seconds, 2) if seconds else None,
                   "photos_per_s_per_worker": round(scanned / seconds / jobs, 2) if seconds else None,
                   "rescan_s": again["wall_s"], "rescan_skipped": again["report"].get("skipped"),
                   "load_avg": os.getloadavg()}  # fmt: skip
            if last:
                row["resume"] = {"exit_interrupted": parts[0]["exit"],
                                 "indexed_before": parts[0]["report"].get("scanned"),
                                 "resumed_scanned": parts[1]["report"].get("scanned"),
                                 "resumed_skipped": parts[1]["report"].get("skipped"),
                                 "resumed_wall_s": parts[1]["wall_s"],
                                 "resume_start_s": _first_progress(parts[1])}  # fmt: skip
            for i, p in enumerate(parts):
                row[f"part{i + 1}"] = _rss(p["rss_mb"])
            rows.append(row)
            print(
                json.dumps({k: v for k, v in row.items() if not k.startswith("part")}), flush=True
            )
            for i, _ in enumerate(parts):
                r = row[f"part{i + 1}"]
                print(f"  RSS part {i + 1}: first quarter {r.get('rss_mb_first_quarter')} MB, last "
                      f"quarter {r.get('rss_mb_last_quarter')} MB, max {r.get('rss_mb_max')} MB",
                      flush=True)  # fmt: skip
        find = find_latency(work / f"index-{args.jobs[-1]}.db", known(DATA / "faces"))
        print(json.dumps(find))
        print(f"load average at the end: {os.getloadavg()}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "library-scale.json").write_text(json.dumps(
            {"photos": args.photos, "scans": rows, "find": find,
             "load_avg_at_end": os.getloadavg()}, indent=1) + "\n")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _first_progress(part: dict) -> float | None:
    """Seconds from the resumed scan's start to its first scanned photo (walk + skip checks):
    wall time minus the scan's own `seconds` (which start with the workers)."""
    seconds = part["report"].get("seconds")
    return round(part["wall_s"] - seconds, 1) if seconds is not None else None


if __name__ == "__main__":
    sys.exit(main())
