"""Library benchmarks: clustering purity on faces/ treated as unknown; scan speed, resume, find P/R.

    python bench/library.py cluster --model models/faces.tflite [--distances 0.3,0.4,0.5,0.6,0.7]
    python bench/library.py scan --model models/faces.tflite [--jobs 2] [--interrupt-after 20]

Prints a table, writes bench/results/library-<what>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.progress import progress  # noqa: E402
from tests.conftest import DATA  # noqa: E402
from tests.splits import heldout_photos, people, photos  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _save(name: str, result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"library-{name}.json").write_text(json.dumps(result, indent=1) + "\n")


def bench_cluster(model: str, distances: list[float]) -> dict:
    """Embed every photo of faces/ once, cluster at each distance, score against the folders."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from convert.cluster import cluster_embeddings, purity
    from edge.config import load_config
    from edge.images import read_image
    from edge.stills import StillRecognizer

    faces = DATA / "faces"
    recognizer = StillRecognizer(load_config(None, {}), model)
    emb, truth = [], []
    for name in progress(people(faces), desc="embed", unit="person"):
        for photo in photos(faces, name):
            found = recognizer(read_image(photo))
            if found:
                best = max(found, key=lambda f: f.face.box[2] * f.face.box[3])
                emb.append(best.embedding)
                truth.append(name)
    emb = np.stack(emb)
    rows = []
    for d in distances:
        labels = cluster_embeddings(emb, d)
        clustered = labels >= 0
        rows.append(
            {
                "distance": d,
                "faces": len(labels),
                "identities": len(set(truth)),
                "clusters": int(labels.max() + 1) if clustered.any() else 0,
                "unclustered": int((~clustered).sum()),
                "purity": round(purity(labels, truth), 4),
                # identities whose faces are mostly in one cluster of their own
                "ari": round(adjusted_rand_score(truth, labels), 4),
            }
        )
    print(
        f"{'distance':>8} {'faces':>5} {'ids':>4} {'clusters':>8} {'alone':>5} {'purity':>6} {'ARI':>6}"
    )
    for r in rows:
        print(
            f"{r['distance']:>8} {r['faces']:>5} {r['identities']:>4} {r['clusters']:>8} "
            f"{r['unclustered']:>5} {r['purity']:>6} {r['ari']:>6}"
        )
    result = {"model": model, "rows": rows}
    _save("cluster", result)
    return result


def _convert(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convert", *args], cwd=ROOT, capture_output=True, text=True, **kw
    )


def bench_scan(model: str, jobs: int, interrupt_after: float) -> dict:
    """Full scan of DATA; an interrupted scan resumed; find precision/recall per person."""
    work = Path(tempfile.mkdtemp(prefix="bench-library-"))
    full = work / "full.db"
    proc = _convert("scan", str(DATA), "--index", str(full), "--model", model, "--jobs", str(jobs))
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    first = json.loads(proc.stdout)
    again = json.loads(_convert("scan", str(DATA), "--index", str(full), "--model", model).stdout)

    # Interrupt a fresh scan with SIGINT, then resume it.
    part = work / "part.db"
    p = subprocess.Popen(
        [sys.executable, "-m", "convert", "scan", str(DATA), "--index", str(part), "--model", model,
         "--jobs", str(jobs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(interrupt_after)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    stopped = json.loads(out) if out.strip() else {}
    with sqlite3.connect(part) as db:
        done = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    resumed = json.loads(_convert("scan", str(DATA), "--index", str(part), "--model", model).stdout)

    faces = DATA / "faces"
    meta = json.loads(Path(model).with_suffix(".json").read_text())
    rows = []
    for name in people(faces):
        r = _convert("find", name, "--index", str(full))
        found = (
            {Path(line).resolve() for line in r.stdout.splitlines()} if r.returncode == 0 else set()
        )  # find prints the paths as scanned; the truth is resolved
        truth = {ph.resolve() for ph in photos(faces, name)}
        held = {ph.resolve() for ph in heldout_photos(faces, name)}
        tp = len(found & truth)
        rows.append(
            {
                "person": name,
                "in_model": name in meta["labels"],
                "returned": len(found),
                "correct": tp,
                "precision": round(tp / len(found), 4) if found else None,
                "recall": round(tp / len(truth), 4),
                "heldout_recall": round(len(found & held) / len(held), 4),
            }
        )
    print(f"scan: {first['scanned']} photos, {first['faces']} faces, {first['photos_per_s']} photos/s "
          f"(jobs {jobs}); rescan skipped {again['skipped']}, scanned {again['scanned']}")  # fmt: skip
    print(f"interrupt after {interrupt_after}s: {done} photos indexed, exit {p.returncode}; "
          f"resume scanned {resumed['scanned']}, skipped {resumed['skipped']}")  # fmt: skip
    print(
        f"{'person':<22} {'model':>5} {'found':>5} {'ok':>3} {'prec':>6} {'recall':>6} {'held':>5}"
    )
    for r in rows:
        print(
            f"{r['person']:<22} {'yes' if r['in_model'] else 'no':>5} {r['returned']:>5} "
            f"{r['correct']:>3} {r['precision']!s:>6} {r['recall']:>6} {r['heldout_recall']:>5}"
        )
    result = {
        "model": model,
        "labels": meta["labels"],
        "jobs": jobs,
        "cpu_count": os.cpu_count(),
        "scan": first,
        "rescan": again,
        "interrupt": {
            "after_s": interrupt_after,
            "exit": p.returncode,
            "stopped": stopped,
            "indexed": done,
            "resumed": resumed,
        },  # fmt: skip
        "find": rows,
    }
    _save("scan", result)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("cluster", "scan"))
    p.add_argument("--model", default=str(ROOT / "models" / "faces.tflite"))
    p.add_argument("--distances", default="0.3,0.4,0.5,0.6,0.7")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--interrupt-after", type=float, default=20.0)
    a = p.parse_args()
    if a.what == "cluster":
        bench_cluster(a.model, [float(x) for x in a.distances.split(",")])
    else:
        bench_scan(a.model, a.jobs, a.interrupt_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
