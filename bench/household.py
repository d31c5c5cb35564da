"""A household's weeks of small changes: does the library drift toward naming strangers?

    .venv/bin/python bench/household.py

Data: tests/splits.py's split of ../shared/data ($EDGE_TEST_DATA overrides). Family: a PC
model (`convert train`) of the first 4 known people (7 training photos each), then on the
device: enrol 2 more, forget one, enrol them back, rename one, add a photo (a mirrored copy of
a training photo), name two visitors (4 aligned crops each, from training photos, saved the
way the loop saves an unknown visit). After every change both the library owner's thresholds
and the old rule's (recalibrate from the whole store, each crop a photo) are scored on:
- family: the held-out photos of the family members (never trained on), named correctly;
- strangers: every photo of the 4 people who are not family, the same mirrored, and the 43
  faces of the group photos in detection/ (all never trained on), named as anyone.
Prints a table; writes bench/results/household.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, write_json  # noqa: E402
from bench.photos import run_module  # noqa: E402
from tests.splits import heldout_photos, known, photos, strangers, train_photos  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def _crops(cfg, paths: list[Path], model_path: Path, every_face: bool = False) -> list:
    """Aligned crops of each photo's main face (or of every face), with the photo's name."""
    from edge.align import Aligner
    from edge.detect import create_photo_detector
    from edge.images import read_image
    from edge.recognize import FaceModel
    from edge.stills import main_face

    detector, aligner = create_photo_detector(cfg.detect), Aligner(cfg.detect)
    size = FaceModel.load(model_path, cfg.recognize).input_size
    out = []
    for path in paths:
        image = read_image(path)
        faces = detector.detect(image)
        if not every_face:
            face = main_face(faces)[0]
            faces = [face] if face is not None else []
        out += [(path.name, aligner.crop(image, f, size)) for f in faces]
    return out


def _score(model_path: Path, cfg, family: list[tuple[str, str, np.ndarray]], others: list,
           thresholds: tuple[float, float] | None = None) -> dict:  # fmt: skip
    """Family named right and strangers named as anyone, with the model's or given thresholds."""
    from edge.recognize import FaceModel

    model = FaceModel.load(model_path, cfg.recognize)
    if thresholds is not None:
        model.min_probability, model.max_distance = thresholds
    right = sum(model.identify(crop).name == who for who, _, crop in family)
    named = [(n, model.identify(crop).name) for n, crop in others]
    wrong = [f"{n}->{who}" for n, who in named if who != "unknown"]
    return {
        "family_named": round(right / max(1, len(family)), 3),
        "family_photos": len(family),
        "strangers_named": len(wrong),
        "stranger_photos": len(others),
        "examples": wrong[:3],
        "thresholds": [round(model.min_probability, 2), round(model.max_distance, 2)],
    }


def _old_rule(model_path: Path) -> tuple[float, float]:
    """The thresholds the code before the library owner chose: calibrate on the whole store."""
    from edge.facestore import FaceStore
    from edge.head import calibrate, held_out_scores
    from edge.library.generation import read_meta

    meta = read_meta(model_path)
    store = FaceStore.load(model_path.with_name(meta["store"]))
    chosen = calibrate(held_out_scores(store.emb, store.y, len(store.labels)))["chosen"]
    return chosen["min_probability"], chosen["max_distance"]


def main() -> int:
    """Train the family's PC model, make the changes, score after each; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "household.json"))
    args = ap.parse_args()
    from edge.config import load_config
    from edge.library import FaceLibrary
    from edge.unknowns import UnknownStore

    faces = DATA / "faces"
    people = known(faces)
    pc, (e, f), outsider = people[:4], people[4:6], people[6]
    work = Path(tempfile.mkdtemp(prefix="bench-household-"))
    start = work / "pc-dataset"
    for name in pc:
        (start / name).mkdir(parents=True)
        for photo in train_photos(faces, name):
            (start / name / photo.name).symlink_to(photo)
    print(f"PC model: convert train on {len(pc)} people ...", file=sys.stderr, flush=True)
    run_module("convert", "train", str(start), "--out", str(work / "models"))
    model = work / "models" / "faces.tflite"
    config = work / "config.yaml"
    config.write_text(
        f"recognize:\n  model: {model}\nenroll:\n  dataset: {work / 'dataset'}\n"
        f"unknown_faces:\n  dir: {work / 'unknown'}\n"
    )
    cfg = load_config(config)
    owner = FaceLibrary(cfg)

    print("cropping the probe photos ...", file=sys.stderr, flush=True)
    probes = {p: _crops(cfg, heldout_photos(faces, p), model) for p in people}
    non_family = [(f"{n}/{x}", c) for n in [outsider, *strangers(faces)] for x, c in
                  _crops(cfg, photos(faces, n), model)]  # fmt: skip
    non_family += [(f"{x} (mirrored)", c[:, ::-1].copy()) for x, c in non_family]
    groups = sorted(p for p in (DATA / "detection").iterdir() if p.suffix == ".jpg")
    non_family += [(f"group {x}", c) for x, c in _crops(cfg, groups, model, every_face=True)]

    mirrored = work / "mirrored.jpg"
    cv2.imwrite(str(mirrored), cv2.imread(str(train_photos(faces, pc[0])[0]))[:, ::-1])

    def visitor(person: str, visit: int) -> None:
        crops = _crops(cfg, train_photos(faces, person)[:4], model)
        from edge.recognize import FaceModel

        m = FaceModel.load(model, cfg.recognize)
        UnknownStore(cfg.unknown_faces).save_visit(
            [(c, m.infer(c)[0], 1.0) for _, c in crops],
            visit=visit, track=1, name="unknown", confidence=0.3,
        )  # fmt: skip

    family = list(pc)
    rows, names = [], {p: p for p in people}

    def record(change: str, result: dict | None) -> None:
        fam = [(names[p], p, c) for p in family for _, c in probes[p]]
        new = _score(model, cfg, fam, non_family)
        old = _score(model, cfg, fam, non_family, _old_rule(model))
        rows.append({"change": change, "people": len(family), "owner": new, "old_rule": old,
                     "note": (result or {}).get("thresholds", "")})  # fmt: skip
        print(f"{change}: {new['thresholds']} strangers named {new['strangers_named']}, "
              f"family {new['family_named']}; old rule {old['thresholds']} strangers named "
              f"{old['strangers_named']}, family {old['family_named']}",
              file=sys.stderr, flush=True)  # fmt: skip

    record("PC model, 4 people", None)
    changes = [
        (f"enrol {e}", lambda: owner.enroll(e, train_photos(faces, e)), lambda: family.append(e)),
        (f"enrol {f}", lambda: owner.enroll(f, train_photos(faces, f)), lambda: family.append(f)),
        (f"forget {f}", lambda: owner.forget(f), lambda: family.remove(f)),
        (f"enrol {f} back", lambda: owner.enroll(f, train_photos(faces, f)),
         lambda: family.append(f)),
        (f"rename {e} -> Eve", lambda: owner.rename(e, "Eve"), lambda: names.update({e: "Eve"})),
        (f"add a photo of {pc[0]}", lambda: owner.enroll(pc[0], [mirrored]), None),
        ("name visitor 1 (Eve)", lambda: visitor(e, 1) or owner.name_visitor(1, "Eve"), None),
        (f"name visitor 2 ({pc[1]})", lambda: visitor(pc[1], 2) or owner.name_visitor(2, pc[1]),
         None),
    ]  # fmt: skip
    for change, do, then in changes:
        result = do()
        if then is not None:
            then()
        record(change, result)

    print(
        table(
            [
                {
                    "change": r["change"],
                    "owner p / d": "{:.2f} / {:.2f}".format(*r["owner"]["thresholds"]),
                    "strangers named": f"{r['owner']['strangers_named']}/{r['owner']['stranger_photos']}",
                    "family named": f"{r['owner']['family_named']:.2f} of {r['owner']['family_photos']}",
                    "old rule p / d": "{:.2f} / {:.2f}".format(*r["old_rule"]["thresholds"]),
                    "old: strangers named": f"{r['old_rule']['strangers_named']}",
                    "old: family named": f"{r['old_rule']['family_named']:.2f}",
                }
                for r in rows
            ],
            ["change", "owner p / d", "strangers named", "family named", "old rule p / d",
             "old: strangers named", "old: family named"],
        )
    )  # fmt: skip
    write_json(args.out, {"work": str(work), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
