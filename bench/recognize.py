"""Recognition benchmark: `convert train` cost and cache reuse, open-set accuracy, CV top-1,
ms per crop (int8 vs float TFLite, 1 and 2 threads) and model size.

    .venv/bin/python bench/recognize.py [--skip-cv] [--repeat 50]

Data: ../shared/data/faces with the split of tests/splits.py ($EDGE_TEST_DATA overrides).
Steps: (1) train on the 7 known people's training photos with an empty cache, (2) add an 8th
person's folder and train again on the same cache, (3) `convert eval` of the model from (1)
on the known people's held-out photos + the 3 strangers, (4) train on all 10 people for the
5-fold CV top-1, (5) time the int8 model and a float export of the same graph side by side.
Prints tables; writes bench/results/recognize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.progress import progress  # noqa: E402
from tests.splits import heldout_photos, known, make_train_dataset, people, photos, strangers  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def run(*args: str) -> dict:
    """Run `python -m convert ARGS`; wall time, the child's peak RSS (MB) and its stdout JSON."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convert", *args],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"convert {' '.join(args)} failed:\n{err.read()[-3000:]}")
        return {
            "wall_s": round(wall, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "result": json.loads(out.read()),
        }


def time_model(path: Path, crops_rgb: list[np.ndarray], threads: int, repeat: int) -> float:
    """Median ms per invoke (input set + invoke + outputs read) over `repeat` crops."""
    from edge.tflite import load_interpreter

    interp = load_interpreter(path, threads)
    inp = interp.get_input_details()[0]
    outs = [o["index"] for o in interp.get_output_details()]
    xs = [c.astype(inp["dtype"])[None] for c in crops_rgb]
    for x in xs[:3]:  # warm-up
        interp.set_tensor(inp["index"], x)
        interp.invoke()
    ms = []
    for i in range(repeat):
        t = time.perf_counter()
        interp.set_tensor(inp["index"], xs[i % len(xs)])
        interp.invoke()
        for o in outs:
            interp.get_tensor(o)
        ms.append((time.perf_counter() - t) * 1000)
    return statistics.median(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cv", action="store_true", help="skip training on all 10 people")
    ap.add_argument("--repeat", type=int, default=50, help="invocations timed per model/threads")
    args = ap.parse_args()
    faces = DATA / "faces"
    work = Path(tempfile.mkdtemp(prefix="bench-recognize-"))
    res: dict = {"data": str(faces)}
    # the convert runs (their own bars are off: stderr is captured) and the float export
    steps = progress(total=4 if args.skip_cv else 5, desc="recognize bench", unit="step")
    try:
        ds = make_train_dataset(faces, work / "dataset")
        cache = work / "cache"
        first = run("train", str(ds), "--out", str(work / "m7"), "--cache", str(cache))
        steps.update()
        newcomer = strangers(faces)[0]
        for photo in photos(faces, newcomer)[:7]:
            (ds / newcomer).mkdir(exist_ok=True)
            (ds / newcomer / photo.name).symlink_to(photo)
        second = run("train", str(ds), "--out", str(work / "m8"), "--cache", str(cache))
        steps.update()
        res["train_first"] = {"wall_s": first["wall_s"], "stages_s": first["result"]["seconds"]}
        res["train_after_adding_a_person"] = {
            "wall_s": second["wall_s"],
            "stages_s": second["result"]["seconds"],
        }
        res["train_peak_rss_mb"] = {"first": first["peak_rss_mb"], "second": second["peak_rss_mb"]}
        res["model_7"] = {
            k: first["result"][k] for k in ("cv_top1", "calibration", "int8_vs_float", "model_mb")
        }

        ev = work / "eval"
        for name in people(faces):
            (ev / name).mkdir(parents=True)
            for photo in heldout_photos(faces, name):
                (ev / name / photo.name).symlink_to(photo)
        res["open_set"] = run(
            "eval", str(ev), "--model", str(work / "m7" / "faces.tflite"), "--cache", str(cache)
        )["result"]
        steps.update()

        if not args.skip_cv:
            full = run("train", str(faces), "--out", str(work / "m10"), "--cache", str(cache))[
                "result"
            ]
            steps.update()
            res["all_10"] = {
                k: full[k]
                for k in (
                    "people",
                    "photos",
                    "skipped",
                    "cv_folds",
                    "cv_top1",
                    "calibration",
                    "int8_vs_float",
                    "model_mb",
                )
            }

        # side-by-side speed: the int8 model vs a float export of the same graph
        from convert import export
        from convert.backbone import load_backbone
        from edge.head import Head

        model = work / "m7" / "faces.tflite"
        meta = json.loads(model.with_suffix(".json").read_text())
        backbone = load_backbone("facenet", ROOT / "models")
        n = len(meta["labels"])
        rng = np.random.default_rng(0)
        head = Head(
            rng.normal(0, 1, (512, n)).astype(np.float32),
            np.zeros(n, np.float32),
            np.asarray(meta["centroids"], np.float32),
        )
        float_path = work / "faces-float.tflite"
        float_path.write_bytes(export.convert(backbone, head, None, quantize=False))
        steps.update()
        steps.close()
        crops = []
        for name in known(faces):
            for photo in heldout_photos(faces, name):
                img = cv2.resize(cv2.imread(str(photo))[45:205, 45:205], (160, 160))
                crops.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        speed = []
        for threads in (1, 2):
            for label, path in (("int8", model), ("float32", float_path)):
                speed.append(
                    {
                        "model": label,
                        "threads": threads,
                        "ms_per_crop": round(time_model(path, crops, threads, args.repeat), 2),
                        "mb": round(path.stat().st_size / 1e6, 1),
                    }
                )
        res["speed"] = speed
        res["align_ms"] = round(_align_ms(faces), 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nconvert train (7 people x 7 photos)")
    print(
        f"  first run, empty cache : {res['train_first']['wall_s']:6.1f} s  stages {res['train_first']['stages_s']}"
    )
    print(
        f"  + one person's folder  : {res['train_after_adding_a_person']['wall_s']:6.1f} s  stages {res['train_after_adding_a_person']['stages_s']}"
    )
    print(f"  peak RSS               : {res['train_peak_rss_mb']} MB")
    o = res["open_set"]
    print(
        f"\nopen set: {o['known_photos']} held-out known, {o['stranger_photos']} stranger photos ({o['skipped']} skipped)"
    )
    print(
        f"  thresholds {o['thresholds']}: known accuracy {o['known_accuracy']:.3f}, strangers rejected {o['stranger_rejection']:.3f}"
    )
    print("  max_distance  known_acc  stranger_rej")
    for r in o["roc_distance"]:
        print(
            f"  {r['max_distance']:12.2f}  {r['known_accuracy']:9.3f}  {r['stranger_rejection']:12.3f}"
        )
    if "all_10" in res:
        a = res["all_10"]
        print(
            f"\nall 10 people: {a['cv_folds']}-fold CV top-1 {a['cv_top1']:.3f} on {a['photos']} photos ({a['skipped']} skipped); int8 vs float {a['int8_vs_float']}"
        )
    print("\nmodel    threads  ms/crop   MB")
    for s in res["speed"]:
        print(f"{s['model']:8} {s['threads']:7}  {s['ms_per_crop']:7.2f}  {s['mb']:5.1f}")
    print(f"align (landmarks + warp) ms per face: {res['align_ms']}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recognize.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {out / 'recognize.json'}")


def _align_ms(faces: Path) -> float:
    from edge.align import Aligner
    from edge.config import load_config
    from edge.detect import create_detector

    cfg = load_config(None, {})
    det, al = create_detector(cfg.detect), Aligner(cfg.detect)
    ms = []
    for name in known(faces):
        for photo in heldout_photos(faces, name):
            img = cv2.imread(str(photo))
            found = det.detect(img)
            if not found:
                continue
            face = max(found, key=lambda f: f.box[2] * f.box[3])
            t = time.perf_counter()
            al.crop(img, face, 160)
            ms.append((time.perf_counter() - t) * 1000)
    return statistics.median(ms[1:])


if __name__ == "__main__":
    main()
