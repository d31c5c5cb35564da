"""`convert scan` against face_recognition's own CLI on the same photos, one CPU each.

    .venv/bin/python bench/scanspeed.py [--model FILE] [--rounds 2]

Photos (../shared/data, $EDGE_TEST_DATA; gathered into a temp folder, never committed): the
held-out photos of tests/splits.py (21 of 7 known people, 30 of 3 strangers), the same 51 cut
to their face (tests/facefill.py), the 9 group photos of detection/ (43 faces) and the 11
no-face photos. Each round runs `python -m convert scan --jobs 1` into a fresh index, then
`face_recognition --cpus 1 KNOWN PHOTOS` (KNOWN: one training photo of each known person),
so the two are side by side; the round with less CPU counts. Start-up (imports, models, the
known people) is measured on a one-photo folder and reported apart. Both whole commands: start-up
and model loading included. Quality comes from the timed runs themselves: our index's boxes
(group photos matched at IoU 0.4, tests/groundtruth.py) and face_recognition's per-photo
output (it prints no boxes: faces per photo). Needs .venv-peers (bench/setup-peers.sh).
--baseline DIR (a checkout of older code, e.g. `git worktree add DIR COMMIT`) also runs that
code's `convert scan` in each round, beside ours. Prints a table; writes
bench/results/scanspeed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import run  # noqa: E402
from bench.pipeline import find_model  # noqa: E402
from tests.facefill import face_filling_set  # noqa: E402
from tests.groundtruth import load_gt  # noqa: E402
from tests.splits import heldout_photos, known, people, photos  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
FACE_RECOGNITION = ROOT / ".venv-peers" / "bin" / "face_recognition"


def gather(work: Path) -> tuple[Path, Path, dict[str, str]]:
    """The photo folder, the known folder, and each photo's kind (held-out, cut, group, no-face)."""
    faces = DATA / "faces"
    tree, known_dir = work / "photos", work / "known"
    tree.mkdir()
    kinds: dict[str, str] = {}
    cut = face_filling_set(faces, work / "filling")
    cut_by_stem = {p.parent.name + "/" + p.stem: p for p in cut}
    for name in people(faces):
        for p in heldout_photos(faces, name):
            for kind, src in (("held-out", p), ("cut", cut_by_stem.get(name + "/" + p.stem))):
                if src is None:
                    continue
                dst = tree / f"{kind}-{name}-{src.name}"  # flat: face_recognition does not recurse
                dst.symlink_to(src)
                kinds[str(dst)] = kind
    for kind, folder in (("group", DATA / "detection"), ("no-face", DATA / "no_face")):
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                dst = tree / f"{kind}-{p.name}"
                dst.symlink_to(p)
                kinds[str(dst)] = kind
    known_dir.mkdir()
    for name in known(faces):
        first = photos(faces, name)[0]  # a training photo (held-out ones are the last three)
        (known_dir / f"{name}{first.suffix}").symlink_to(first)
    return tree, known_dir, kinds


def ours(tree: Path, model: Path, index: Path, root: Path = ROOT) -> dict:
    """One `convert scan --jobs 1` of the code in `root` into a fresh index: time and faces
    per photo."""
    index.unlink(missing_ok=True)
    r = run([sys.executable, "-m", "convert", "scan", str(tree), "--index", str(index),
             "--model", str(model), "--jobs", "1"], env={"TF_CPP_MIN_LOG_LEVEL": "2"},
            cwd=root)  # fmt: skip
    if r["rc"] != 0:
        raise SystemExit(f"convert scan failed: {r['stderr']}")
    with sqlite3.connect(index) as db:
        boxes: dict[str, list] = {p: [] for (p,) in db.execute("SELECT path FROM photos")}
        for p, x, y, w, h in db.execute("SELECT photo, x, y, w, h FROM faces"):
            boxes[p].append((x, y, w, h))
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "boxes": boxes}


def theirs(tree: Path, known_dir: Path) -> dict:
    """One `face_recognition --cpus 1`: time and faces per photo."""
    r = run([str(FACE_RECOGNITION), "--cpus", "1", str(known_dir), str(tree)])
    if r["rc"] != 0:
        raise SystemExit(f"face_recognition failed: {r['stderr']}")
    counts: dict[str, int] = {}
    for line in r["stdout"].splitlines():
        path, _, who = line.rpartition(",")
        counts[path] = counts.get(path, 0) + (who != "no_persons_found")
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "counts": counts}


def _source(path: str) -> str:
    """The detection/ photo a gathered group photo links to."""
    return Path(os.readlink(path)).name


def quality_ours(boxes: dict[str, list], kinds: dict[str, str]) -> dict:
    """Recall and precision of our boxes: LFW photos (held-out, cut) need a face, group photos
    their ground-truth boxes, no-face photos none."""
    from edge.detect import Face
    from tests.groundtruth import match

    gt = load_gt(DATA / "detection")
    tp = fp = fn = 0
    for path, kind in kinds.items():
        found = boxes.get(os.path.abspath(path), [])
        if kind in ("held-out", "cut"):
            tp, fn = tp + bool(found), fn + (not found)
        elif kind == "group":
            a, b, c = match([Face(tuple(f), 1.0) for f in found], gt[_source(path)])
            tp, fp, fn = tp + a, fp + b, fn + c
        else:
            fp += len(found)
    return {"recall": round(tp / (tp + fn), 3), "precision": round(tp / (tp + fp), 3),
            "faces_found": tp, "faces": tp + fn, "false_boxes": fp}  # fmt: skip


def quality_theirs(counts: dict[str, int], kinds: dict[str, str]) -> dict:
    """The same from face counts: LFW photos with a face, group faces (at most the truth per
    photo), faces reported on no-face photos."""
    gt = load_gt(DATA / "detection")
    tp = fn = fp = 0
    for path, kind in kinds.items():
        n = counts.get(path, 0)
        if kind in ("held-out", "cut"):
            tp, fn = tp + bool(n), fn + (not n)
        elif kind == "group":
            truth = len(gt[_source(path)])
            tp, fn, fp = tp + min(n, truth), fn + max(0, truth - n), fp + max(0, n - truth)
        else:
            fp += n
    return {"recall": round(tp / (tp + fn), 3), "precision": round(tp / (tp + fp), 3),
            "faces_found": tp, "faces": tp + fn, "false_boxes": fp}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="face model (default: bench/pipeline.py's find_model)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each; best counts")
    ap.add_argument("--baseline", type=Path, help="a checkout of older code to run beside ours")
    args = ap.parse_args()
    if not FACE_RECOGNITION.exists():
        print("error: no .venv-peers (run bench/setup-peers.sh)", file=sys.stderr)
        return 2
    model = find_model(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-scanspeed-"))
    tree, known_dir, kinds = gather(work)
    n = len(kinds)
    one = work / "one"  # start-up: the same command on one no-face photo
    one.mkdir()
    first = next(p for p, k in kinds.items() if k == "no-face")
    (one / Path(first).name).symlink_to(os.readlink(first))
    startup = {"convert scan": min(ours(one, model, work / "one.db")["cpu_s"] for _ in range(2)),
               "face_recognition": min(theirs(one, known_dir)["cpu_s"] for _ in range(2))}  # fmt: skip
    runs: dict[str, list[dict]] = {"convert scan": [], "face_recognition": []}
    if args.baseline:
        startup["baseline scan"] = min(
            ours(one, model, work / "one.db", args.baseline)["cpu_s"] for _ in range(2)
        )
        runs["baseline scan"] = []
    for i in range(args.rounds):
        runs["convert scan"].append(ours(tree, model, work / "index.db"))
        if args.baseline:
            runs["baseline scan"].append(ours(tree, model, work / "index.db", args.baseline))
        runs["face_recognition"].append(theirs(tree, known_dir))
        print(f"round {i + 1}: scan {runs['convert scan'][-1]['wall_s']:.1f} s, face_recognition "
              f"{runs['face_recognition'][-1]['wall_s']:.1f} s", file=sys.stderr)  # fmt: skip
    rows = []
    for system, rs in runs.items():
        best = min(rs, key=lambda r: r["cpu_s"])
        q = (quality_theirs(best["counts"], kinds) if system == "face_recognition"
             else quality_ours(best["boxes"], kinds))  # fmt: skip
        rows.append({"system": system, "photos": n, "wall_s": [round(r["wall_s"], 1) for r in rs],
                     "cpu_s": [round(r["cpu_s"], 1) for r in rs],
                     "photos_per_cpu_s": round(n / best["cpu_s"], 2),
                     "startup_cpu_s": round(startup[system], 2),
                     "photos_per_cpu_s_after_startup": round(
                         (n - 1) / max(1e-3, best["cpu_s"] - startup[system]), 2),
                     "photos_per_wall_s": round(n / min(r["wall_s"] for r in rs), 2), **q})  # fmt: skip
    by = {r["system"]: r for r in rows}
    fr = by["face_recognition"]
    for r in rows:
        r["ratio_cpu"] = round(r["photos_per_cpu_s"] / fr["photos_per_cpu_s"], 2)
    ratio = by["convert scan"]["photos_per_cpu_s"] / fr["photos_per_cpu_s"]
    key = "photos_per_cpu_s_after_startup"
    steady = by["convert scan"][key] / fr[key]
    wall_ratio = by["convert scan"]["photos_per_wall_s"] / fr["photos_per_wall_s"]
    print(f"{'system':<17} {'photos':>6} {'wall s':>14} {'CPU s':>14} {'photos/CPU s':>12} "
          f"{'start CPU s':>11} {'after start':>11} {'recall':>7} {'precision':>9} {'false':>5}")  # fmt: skip
    for r in rows:
        print(f"{r['system']:<17} {r['photos']:>6} {str(r['wall_s']):>14} {str(r['cpu_s']):>14} "
              f"{r['photos_per_cpu_s']:>12} {r['startup_cpu_s']:>11} {r[key]:>11} {r['recall']:>7} {r['precision']:>9} {r['false_boxes']:>5}")  # fmt: skip
    if "baseline scan" in by:
        print(f"baseline scan / face_recognition: {by['baseline scan']['ratio_cpu']:.2f}x photos "
              "per CPU second")  # fmt: skip
    print(f"convert scan / face_recognition: {ratio:.2f}x photos per CPU second "
          f"({steady:.2f}x after start-up), "
          f"{wall_ratio:.2f}x photos per wall second; load {os.getloadavg()}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"photos": n, "rows": rows, "ratio_cpu": round(ratio, 2),
           "ratio_cpu_after_startup": round(steady, 2),
           "ratio_wall": round(wall_ratio, 2), "load_avg_at_end": os.getloadavg()}  # fmt: skip
    (RESULTS / "scanspeed.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
