"""Still-photo benchmark: the photo detection profile against the live one, and identification.

    .venv/bin/python bench/photos.py [--model FILE] [--repeat 3]

Data ($EDGE_TEST_DATA overrides ../shared/data):
- detection/: 9 group photos, 43 faces of 37-90 px (gt_boxes.csv), and the same 9 photos
  as one 3x3 mosaic (1500x1500 px: small faces in a large photo); no_face/: 11 photos;
- a face-filling set (tests/facefill.py): every photo of faces/ cut to its face box + 10 %;
- identification: the split of tests/splits.py. A model trained by `convert train` on the
  7 known people's training photos (or --model) names the held-out photos (21 known, 30 of
  3 strangers), as given and cut to the face.
Profiles run interleaved photo by photo, so their times are side by side. Prints tables;
writes bench/results/photos.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, timed, write_json  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.detect import Detector, create_detector, create_photo_detector  # noqa: E402
from edge.images import read_image  # noqa: E402
from edge.progress import progress  # noqa: E402
from tests.facefill import face_filling_set  # noqa: E402
from tests.groundtruth import load_gt, match, mosaic  # noqa: E402
from tests.splits import heldout_photos, known, make_train_dataset, people  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def detection(profiles: dict[str, Detector], sets: dict[str, list], repeat: int) -> list[dict]:
    """Per profile and photo set: precision/recall (sets with boxes) or photos with a face."""
    rows = []
    acc = {
        (p, s): {"tp": 0, "fp": 0, "fn": 0, "boxes": 0, "found": 0, "ms": []}
        for p in profiles
        for s in sets
    }
    for set_name, items in sets.items():
        for image, truth in progress(items, desc=f"detect {set_name}", unit="photo"):
            for prof, det in profiles.items():
                faces, ms = timed(det, image, repeat)
                a = acc[(prof, set_name)]
                a["ms"].append(ms)
                a["boxes"] += len(faces)
                a["found"] += bool(faces)
                if truth is not None:
                    tp, fp, fn = match(faces, truth)
                    a["tp"] += tp
                    a["fp"] += fp
                    a["fn"] += fn
    for (prof, set_name), a in acc.items():
        n = len(sets[set_name])
        row = {
            "profile": prof,
            "set": set_name,
            "photos": n,
            "ms_median": round(statistics.median(a["ms"]), 1),
        }
        if sets[set_name][0][1] is not None:
            tp, fp, fn = a["tp"], a["fp"], a["fn"]
            row |= {
                "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
                "recall": round(tp / (tp + fn), 3),
                "found": f"{tp}/{tp + fn}",
                "false_boxes": fp,
            }
        elif set_name == "no-face":
            row |= {"false_boxes": a["boxes"], "found": f"{a['found']}/{n} photos with a box"}
        else:
            row |= {
                "recall": round(a["found"] / n, 3),
                "found": f"{a['found']}/{n}",
                "false_boxes": a["boxes"] - a["found"],
            }
        rows.append(row)
    return rows


def run_module(module: str, *args: str) -> tuple[float, str]:
    """Run `python -m MODULE ARGS` (TensorFlow quiet); (wall seconds, stdout). Exits on failure."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if proc.returncode:
        sys.exit(f"{module} {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - t0, proc.stdout


def train_model(work: Path) -> Path:
    """`convert train` on the split's training photos; the .tflite written."""
    dataset = make_train_dataset(DATA / "faces", work / "dataset")
    run_module("convert", "train", str(dataset), "--out", str(work / "model"))
    return work / "model" / "faces.tflite"


def identification(model: Path, probes: dict[str, list[tuple[Path, str | None]]]) -> list[dict]:
    """Per detection profile and probe set: faces found, top-1, known named, strangers rejected."""
    from edge.align import Aligner
    from edge.recognize import UNKNOWN, FaceModel

    cfg = load_config(None)
    face_model = FaceModel.load(model, cfg.recognize)
    aligner = Aligner(cfg.detect)
    profiles = {"photo": create_photo_detector(cfg.detect), "live": create_detector(cfg.detect)}
    rows = []
    for set_name, items in probes.items():
        for prof, det in profiles.items():
            k = {"n": 0, "found": 0, "top1": 0, "named": 0, "wrong": 0}
            s = {"n": 0, "found": 0, "rejected": 0}
            misses = []
            for path, person in progress(items, desc=f"identify {set_name} {prof}", unit="photo"):
                image = read_image(path)
                faces = sorted(det.detect(image), key=lambda f: -f.box[2] * f.box[3])
                ident = None
                if faces:
                    crop = aligner.crop(image, faces[0], face_model.input_size)
                    ident = face_model.identify(crop)
                    emb, probs = face_model.infer(crop)
                    top = face_model.labels[int(np.argmax(probs))]
                if person is not None:
                    k["n"] += 1
                    if ident is None:
                        misses.append(f"{path.parent.name}/{path.name}: no face")
                        continue
                    k["found"] += 1
                    k["top1"] += top == person
                    k["named"] += ident.name == person
                    k["wrong"] += ident.name not in (person, UNKNOWN)
                    if ident.name != person:
                        misses.append(
                            f"{path.parent.name}/{path.name}: {ident.name} (top {top}, p {ident.probability:.2f}, d {ident.distance:.2f})"
                        )
                else:
                    s["n"] += 1
                    s["found"] += ident is not None
                    s["rejected"] += ident is None or ident.name == UNKNOWN
                    if ident is not None and ident.name != UNKNOWN:
                        misses.append(
                            f"{path.parent.name}/{path.name}: stranger named {ident.name}"
                        )
            rows.append(
                {
                    "profile": prof,
                    "probes": set_name,
                    "known": k["n"],
                    "known_face_found": k["found"],
                    "top1": round(k["top1"] / k["n"], 3),
                    "known_named": round(k["named"] / k["n"], 3),
                    "known_misnamed": k["wrong"],
                    "strangers": s["n"],
                    "stranger_face_found": s["found"],
                    "strangers_rejected": round(s["rejected"] / s["n"], 3),
                    "errors": misses,
                }
            )
    return rows


def main() -> int:
    """Run the benchmark, print tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="face model trained on the split (default: train one now)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per photo; the fastest counts")
    ap.add_argument("--skip-identify", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "photos.json"))
    args = ap.parse_args()

    cfg = load_config(None).detect
    gt = load_gt(DATA / "detection")
    group = [(read_image(DATA / "detection" / n), boxes) for n, boxes in sorted(gt.items())]
    work = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    filling = face_filling_set(DATA / "faces", work / "filling")
    sets = {
        "group photos": group,
        "group mosaic 1500 px": [mosaic(group)],
        "no-face": [(read_image(p), None) for p in sorted((DATA / "no_face").iterdir())],
        "face-filling": [(read_image(p), None) for p in filling],
    }
    profiles = {"photo": create_photo_detector(cfg), "live": create_detector(cfg)}
    print("detection ...", file=sys.stderr, flush=True)
    result: dict = {"settings": {"photo": repr(cfg.photo), "live_width": cfg.downscale_width}}
    result["detection"] = detection(profiles, sets, args.repeat)
    ms = {(r["profile"], r["set"]): r["ms_median"] for r in result["detection"]}
    result["time_ratio_photo_vs_live"] = {
        s: round(ms[("photo", s)] / ms[("live", s)], 2) for s in sets
    }
    print(
        table(
            result["detection"],
            [
                "profile",
                "set",
                "photos",
                "precision",
                "recall",
                "found",
                "false_boxes",
                "ms_median",
            ],
        )
    )
    print("\ntime per photo, photo profile / live profile (side by side):")
    for s, r in result["time_ratio_photo_vs_live"].items():
        print(f"  {s}: {r}x")

    if not args.skip_identify:
        print("\nidentification ...", file=sys.stderr, flush=True)
        model = Path(args.model) if args.model else train_model(work)
        faces = DATA / "faces"
        given = [
            (p, n if n in known(faces) else None)
            for n in people(faces)
            for p in heldout_photos(faces, n)
        ]
        cut = {p.parent.name + "/" + p.stem: p for p in filling}
        as_cut = [
            (cut[p.parent.name + "/" + p.stem], n)
            for p, n in given
            if p.parent.name + "/" + p.stem in cut
        ]
        result["identification"] = identification(
            model, {"held-out as given": given, "held-out cut to the face": as_cut}
        )
        print(
            table(
                result["identification"],
                [
                    "profile",
                    "probes",
                    "known",
                    "known_face_found",
                    "top1",
                    "known_named",
                    "known_misnamed",
                    "strangers",
                    "stranger_face_found",
                    "strangers_rejected",
                ],
            )
        )
        for r in result["identification"]:
            for e in r["errors"]:
                print(f"  {r['profile']} / {r['probes']}: {e}")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
