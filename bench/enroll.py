"""On-device enrolment against PC training: accuracy on held-out photos, and seconds per enrolment.

    .venv/bin/python bench/enroll.py [--start 2]

Data: the split of tests/splits.py ($EDGE_TEST_DATA overrides ../shared/data). Two models of
the same 7 known people, from the same 7 training photos each:
- PC: `convert train` on all 7 people;
- device: `convert train` on the first --start people, then `python -m edge enroll NAME
  PHOTOS...` for each of the others (numpy head refit, no TensorFlow).
Both name the held-out photos (21 known, 30 of 3 strangers) with the photo profile. Each
enrolment is timed against `python -m edge identify` on the same photos, run right after it.
Prints tables; writes bench/results/enroll.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, write_json  # noqa: E402
from bench.photos import identification, run_module  # noqa: E402
from tests.splits import heldout_photos, known, make_train_dataset, people, train_photos  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    """Train both models, time the enrolments, compare on held-out photos, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=int, default=2, help="people the PC trains the device model on")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "enroll.json"))
    args = ap.parse_args()
    faces = DATA / "faces"
    work = Path(tempfile.mkdtemp(prefix="bench-enroll-"))
    config = work / "config.yaml"
    config.write_text(f"enroll:\n  dataset: {work / 'device-dataset'}\n")

    print("PC model: convert train on 7 people ...", file=sys.stderr, flush=True)
    pc_s, _ = run_module(
        "convert", "train", str(make_train_dataset(faces, work / "all")), "--out", str(work / "pc")
    )
    first = known(faces)[: args.start]
    start = work / "start"
    for name in first:
        (start / name).mkdir(parents=True)
        for photo in train_photos(faces, name):
            (start / name / photo.name).symlink_to(photo)
    print(
        f"device model: convert train on {len(first)}, then edge enroll ...",
        file=sys.stderr,
        flush=True,
    )
    run_module("convert", "train", str(start), "--out", str(work / "device"))
    model = str(work / "device" / "faces.tflite")
    timing = []
    for name in known(faces)[args.start :]:
        photos = [str(p) for p in train_photos(faces, name)]
        enroll_s, out = run_module(
            "edge", "enroll", name, *photos, "--model", model, "--config", str(config)
        )
        identify_s, _ = run_module(
            "edge", "identify", *photos, "--model", model, "--config", str(config)
        )
        timing.append(
            {
                "person": name,
                "photos": len(photos),
                "enroll_s": round(enroll_s, 2),
                "identify_s": round(identify_s, 2),
                "ratio": round(enroll_s / identify_s, 2),
                "people_after": json.loads(out)["people"],
            }
        )
    print(table(timing, ["person", "photos", "enroll_s", "identify_s", "ratio", "people_after"]))

    probes = [
        (p, n if n in known(faces) else None)
        for n in people(faces)
        for p in heldout_photos(faces, n)
    ]
    rows = []
    for label, path in (
        ("PC (convert train)", work / "pc" / "faces.tflite"),
        ("device (edge enroll)", Path(model)),
    ):
        for r in identification(path, {"held-out": probes}):
            if r["profile"] == "photo":
                rows.append({"model": label, **r})
    print()
    print(
        table(
            rows,
            [
                "model",
                "known",
                "top1",
                "known_named",
                "known_misnamed",
                "strangers",
                "strangers_rejected",
            ],
        )
    )
    for r in rows:
        for e in r["errors"]:
            print(f"  {r['model']}: {e}")
    result = {"pc_train_s": round(pc_s, 1), "enrolments": timing, "accuracy": rows}
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
