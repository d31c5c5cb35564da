"""Thresholds for a first model of one or two people, where nobody is there to calibrate against.

    .venv/bin/python bench/first_model.py [--backbone models/backbone.tflite]

Data: tests/splits.py's split of ../shared/data ($EDGE_TEST_DATA overrides), embedded by the
int8 backbone as `edge enroll` does (main face, 4 augmented crops per photo). Every household
of 1 or 2 of the 7 known people (7 + 21), each person from their 7 training photos:
- tuning (the training photos only): each photo scored by a head fitted without it, the other
  known people's training photos as strangers; a grid of (min_probability, max_distance);
- held-out: heads fitted on all 7 training photos; the household's held-out photos must be
  named, every photo of the 3 strangers and the other known people's held-out photos rejected.
Prints both tables; writes bench/results/first_model.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, write_json  # noqa: E402
from tests.splits import heldout_photos, known, strangers, train_photos  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
DISTANCES = np.round(np.arange(0.25, 0.56, 0.01), 2)
PROBABILITIES = (0.5, 0.6, 0.7, 0.8)


def embed(backbone: Path, paths: list[Path]) -> dict[Path, np.ndarray]:
    """(N_AUG, D) int8 embeddings per photo whose main face was found."""
    from edge.config import load_config
    from edge.library.first_model import embedder

    rows = embedder(load_config(None, {}), backbone).embed(paths, set())
    return dict(zip(rows.used, rows.emb, strict=True))


def decide(emb: np.ndarray, y: np.ndarray, n: int, probes: np.ndarray) -> tuple:
    """A head fitted as the library does; (pred, probability, distance) of each probe row."""
    from edge.head import fit_head

    head = fit_head(emb.reshape(-1, emb.shape[-1]), np.repeat(y, emb.shape[1]), n)
    return head.scores(probes)


def scores(emb: dict, family: tuple[str, ...], strangers_: list[Path], probes: list[Path]) -> dict:
    """Held-out-style scores: known rows with their true class, stranger rows."""
    train = [p for name in family for p in emb if p.parent.name == name and p in probes[0]]
    x = np.stack([emb[p] for p in train])
    y = np.array([family.index(p.parent.name) for p in train])
    out = {"true": [], "pred": [], "prob": [], "dist": [], "s_prob": [], "s_dist": []}
    for p in probes[1]:
        pred, prob, dist = decide(x, y, len(family), emb[p][:1])
        out["true"].append(family.index(p.parent.name))
        out["pred"].append(int(pred[0]))
        out["prob"].append(float(prob[0]))
        out["dist"].append(float(dist[0]))
    if strangers_:
        _, prob, dist = decide(x, y, len(family), np.stack([emb[p][0] for p in strangers_]))
        out["s_prob"] += prob.tolist()
        out["s_dist"] += dist.tolist()
    return out


def tuning_scores(emb: dict, family: tuple[str, ...], tune: list[Path], others: list[Path]) -> dict:
    """Each training photo scored by a head fitted without it; the others as strangers."""
    out = {"true": [], "pred": [], "prob": [], "dist": [], "s_prob": [], "s_dist": []}
    mine = [p for p in tune if p.parent.name in family]
    for left in mine:
        rest = [p for p in mine if p != left]
        part = scores(emb, family, [], (rest, [left]))
        for k in ("true", "pred", "prob", "dist"):
            out[k] += part[k]
    whole = scores(emb, family, others, (mine, []))
    out["s_prob"], out["s_dist"] = whole["s_prob"], whole["s_dist"]
    return out


def rates(s: dict, p: float, d: float) -> tuple[float, float]:
    """(known named right, strangers rejected)."""
    ok = (np.array(s["prob"]) >= p) & (np.array(s["dist"]) <= d)
    right = float(np.mean(ok & (np.array(s["pred"]) == np.array(s["true"]))))
    named = (np.array(s["s_prob"]) >= p) & (np.array(s["s_dist"]) <= d)
    return right, float(1 - np.mean(named))


def pooled(all_scores: list[dict]) -> dict:
    out = {k: [] for k in all_scores[0]}
    for s in all_scores:
        for k, v in s.items():
            out[k] += list(v)
    return out


def main() -> int:
    """Run the measurement, print the tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default=str(ROOT / "models" / "backbone.tflite"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "first_model.json"))
    args = ap.parse_args()
    faces = DATA / "faces"
    people = known(faces)
    tune = [p for n in people for p in train_photos(faces, n)]
    held = [p for n in people for p in heldout_photos(faces, n)]
    stranger_photos = [p for n in strangers(faces) for p in heldout_photos(faces, n)]
    emb = embed(Path(args.backbone), tune + held + stranger_photos)
    tune, held = [p for p in tune if p in emb], [p for p in held if p in emb]
    stranger_photos = [p for p in stranger_photos if p in emb]
    result = {"photos_embedded": len(emb), "sizes": {}}
    for size in (1, 2):
        families = list(itertools.combinations(people, size))
        tuning = pooled(
            [
                tuning_scores(emb, f, tune, [p for p in tune if p.parent.name not in f])
                for f in families
            ]
        )
        heldout = pooled(
            [
                scores(
                    emb,
                    f,
                    stranger_photos + [p for p in held if p.parent.name not in f],
                    (tune, [p for p in held if p.parent.name in f]),
                )
                for f in families
            ]
        )
        grid = [
            {
                "p": p,
                "d": float(d),
                **dict(zip(("tune_known", "tune_reject"), rates(tuning, p, d), strict=True)),
            }
            for p in PROBABILITIES
            for d in DISTANCES
        ]
        result["sizes"][size] = {
            "households": len(families),
            "tuning": {"known": len(tuning["true"]), "strangers": len(tuning["s_prob"])},
            "heldout": {"known": len(heldout["true"]), "strangers": len(heldout["s_prob"])},
            "grid": grid,
            "heldout_rates": {
                f"{p}/{d:.2f}": rates(heldout, p, float(d))
                for p in PROBABILITIES
                for d in DISTANCES
            },
        }
        print(f"\n{size} person(s): {len(families)} households, tuning split")
        rows = []
        for g in grid:
            if g["p"] not in (0.5, 0.7) or round(g["d"] * 100) % 5:
                continue
            known_ok, rejected = result["sizes"][size]["heldout_rates"][f"{g['p']}/{g['d']:.2f}"]
            rows.append(
                {
                    "min_prob": g["p"],
                    "max_dist": f"{g['d']:.2f}",
                    "tune known": f"{g['tune_known']:.3f}",
                    "tune strangers rejected": f"{g['tune_reject']:.4f}",
                    "held-out known": f"{known_ok:.3f}",
                    "held-out strangers rejected": f"{rejected:.4f}",
                }
            )
        print(table(rows, list(rows[0])))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
