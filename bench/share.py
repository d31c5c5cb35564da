"""The household's shared face library (library.share): payload size and time to adopt.

    .venv/bin/python bench/share.py [--skip-pis]

1. Payload: 10 people x 20 photos (the 10 people of ../shared/data/faces, their 10 photos
   and the same mirrored: 20 distinct photos each) embedded by the test model, as the
   retained records (edge/share/records.py) a Pi publishes; bytes per person and in all, and
   the time a Pi with the 7-person model takes to parse them and adopt the household
   (merge, refit, commit) through its library owner.
2. Two Pis: tests/household.py's scenario, two `python -m edge` processes on one Mosquitto,
   each playing its own clip at camera pace: naming on front's web page -> adopted by back ->
   recognized by back; two namings at once; a forget on back -> gone from front; back
   stopped during three changes -> caught up after its restart.
Prints tables; writes bench/results/share.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, write_json  # noqa: E402
from bench.photos import train_model  # noqa: E402
from tests.paths import copy_model  # noqa: E402
from tests.splits import known, photos, strangers  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"


def test_model() -> Path:
    """The tests' cached 7-person model (tests/conftest.py), else one trained here."""
    from tests.conftest import _trained_model_key

    cache = Path(os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-faces-tests"))
    cached = cache / f"model-{_trained_model_key(DATA / 'faces')}" / "faces.tflite"
    if cached.is_file():
        return cached
    work = RESULTS / "share-work"
    model = work / "model" / "faces.tflite"
    return model if model.is_file() else train_model(work)


def _pi(model: Path, root: Path, device: str):
    """A FaceLibrary on a copy of `model` with sharing on."""
    from edge.config import load_config
    from edge.library import FaceLibrary

    models = root / "models"
    copy_model(model, models)
    cfg = root / "config.yaml"
    cfg.write_text(
        f"recognize:\n  model: {models / 'faces.tflite'}\nenroll:\n  dataset: {root / 'ds'}\n"
        f"history:\n  enabled: false\nmqtt:\n  device_id: {device}\nlibrary:\n  share: true\n"
    )
    return FaceLibrary(load_config(cfg))


def payload(model: Path, work: Path) -> tuple[list[dict], dict]:
    """10 people x 20 photos as retained records; rows per person and the totals."""
    from edge.library.embed import Embedder
    from edge.share.records import NEVER, Person, Photo, message, read_message
    from edge.share.service import backbone_hash

    faces = DATA / "faces"
    people = known(faces) + strangers(faces)
    maker = _pi(model, work / "maker", "maker")
    embedder = Embedder(maker.cfg, maker.model)
    backbone = backbone_hash(maker.model)
    records, rows = {}, []
    t_embed = time.monotonic()
    for i, name in enumerate(people):
        files = []
        for p in photos(faces, name):
            mirrored = work / "mirrored" / name / f"m-{p.name}"
            mirrored.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(mirrored), cv2.imread(str(p))[:, ::-1])
            files += [p, mirrored]
        done = embedder.embed(files[:20], set())
        pid = f"person_{i:02d}"  # new people for the 7-person Pi: nobody merges by name
        person = Person(pid, f"Person {i:02d}", (1, "maker"), NEVER)
        for key, emb in zip(done.keys, done.emb, strict=True):
            person.photos[key] = Photo((1, "maker"), key, emb)
        records[pid] = message(person, "maker", backbone, "2026-12-03T00:00:00+00:00")
        for key, path in zip(done.keys, done.used, strict=True):  # library.share_photos
            person.photos[key] = Photo((1, "maker"), key, person.photos[key].emb,
                                       path.read_bytes(), path.name)  # fmt: skip
        with_photos = len(message(person, "maker", backbone, "2026-12-03T00:00:00+00:00"))
        rows.append(
            {
                "person": name,
                "photos": len(person.live()),
                "bytes": len(records[pid]),
                "per_photo": len(records[pid]) // max(1, len(person.live())),
                "bytes_with_photos": with_photos,
            }
        )
    embed_s = time.monotonic() - t_embed
    adopter = _pi(model, work / "adopter", "adopter")
    t0 = time.monotonic()
    parsed = {pid: read_message(raw)[0] for pid, raw in records.items()}
    t1 = time.monotonic()
    adopter.adopt_household(parsed)
    t2 = time.monotonic()
    labels = adopter.labels()
    total = sum(len(r) for r in records.values())
    summary = {
        "people": len(records),
        "photos": sum(r["photos"] for r in rows),
        "bytes_total": total,
        "mb_total": round(total / 1e6, 2),
        "bytes_per_person_max": max(r["bytes"] for r in rows),
        "bytes_total_with_photos": sum(r["bytes_with_photos"] for r in rows),
        "parse_s": round(t1 - t0, 3),
        "adopt_s": round(t2 - t1, 2),
        "people_after": len(labels),
        "embed_s": round(embed_s, 1),
    }
    return rows, summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-pis", action="store_true", help="only the payload (no processes)")
    a = p.parse_args()
    model = test_model()
    result: dict = {"model": str(model), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="share-bench-") as tmp:
        rows, summary = payload(model, Path(tmp))
        print("Retained records, 10 people x 20 photos (float16 embeddings, 4 per photo):")
        print(table(rows, ["person", "photos", "bytes", "per_photo", "bytes_with_photos"]))
        print(table([summary], list(summary)))
        result |= {"payload": rows, "payload_summary": summary}
        if not a.skip_pis:
            from tests.household import household_run

            out = household_run(DATA, model, Path(tmp) / "pis")
            out.pop("logs")
            figures = {k: v for k, v in out.items() if k.endswith("_s")}
            print("\nTwo Pis (python -m edge x2, one Mosquitto, clips at camera pace), seconds:")
            print(table([{"step": k, "s": v} for k, v in figures.items()], ["step", "s"]))
            sizes = out["retained_bytes"]
            print(
                f"retained person records: {len(sizes)}, {sum(sizes.values())} bytes "
                f"(largest {max(sizes.values())})"
            )
            result["pis"] = out
    result["load_after"] = os.getloadavg()
    print(f"load average before / after: {result['load_before']} / {result['load_after']}")
    write_json(RESULTS / "share.json", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
