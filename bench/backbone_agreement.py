"""Do two int8 backbones agree (e.g. made by `convert backbone` on aarch64 and on x86_64)?

    .venv/bin/python bench/backbone_agreement.py A/backbone.tflite B/backbone.tflite

Both files run here (a .tflite runs the same anywhere) on the main face of all 100 photos of
../shared/data/faces ($EDGE_TEST_DATA overrides). Reports the embedding cosine between the two,
and the top-1 agreement of a first model's decisions: a head fitted on the 7 known people's
training photos (tests/splits.py) with each file's own embeddings, then every held-out and
stranger photo named (or not, at the first model's thresholds) by each. Writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import write_json  # noqa: E402
from tests.splits import heldout_photos, known, people, photos, train_photos  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))


def decisions(emb: dict, faces: Path) -> dict[Path, str]:
    """The first model's name (or unknown) for every held-out photo, fitted on `emb`."""
    from edge.head import fit_head
    from edge.library.first_model import FIRST_MAX_DISTANCE, FIRST_MIN_PROBABILITY

    names = known(faces)
    train = [p for n in names for p in train_photos(faces, n) if p in emb]
    x = np.stack([emb[p] for p in train])
    y = np.array([names.index(p.parent.name) for p in train])
    head = fit_head(x.reshape(-1, x.shape[-1]), np.repeat(y, x.shape[1]), len(names))
    probes = [p for n in people(faces) for p in heldout_photos(faces, n) if p in emb]
    pred, prob, dist = head.scores(np.stack([emb[p][0] for p in probes]))
    ok = (prob >= FIRST_MIN_PROBABILITY) & (dist <= FIRST_MAX_DISTANCE)
    return {p: (names[c] if a else "unknown") for p, c, a in zip(probes, pred, ok, strict=True)}


def main() -> int:
    """Embed with both files, compare, print and write the JSON."""
    from edge.config import load_config
    from edge.library.first_model import embedder

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "backbone_agreement.json"))
    args = ap.parse_args()
    faces = DATA / "faces"
    paths = [p for n in people(faces) for p in photos(faces, n)]
    cfg = load_config(None, {})
    embs = []
    for path in (args.a, args.b):
        rows = embedder(cfg, path).embed(paths, set())
        embs.append(dict(zip(rows.used, rows.emb, strict=True)))
    both = [p for p in paths if p in embs[0] and p in embs[1]]
    cos = np.array([float(embs[0][p][0] @ embs[1][p][0]) for p in both])
    da, db = decisions(embs[0], faces), decisions(embs[1], faces)
    same = np.mean([da[p] == db[p] for p in da])
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "identical_files": args.a.read_bytes() == args.b.read_bytes(),
        "photos": len(both),
        "embedding_cosine_mean": round(float(cos.mean()), 4),
        "embedding_cosine_min": round(float(cos.min()), 4),
        "decisions": len(da),
        "decision_agreement": round(float(same), 4),
    }
    for k, v in result.items():
        print(f"{k:24} {v}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
