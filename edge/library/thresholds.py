"""Thresholds that do not drift: a change of the library never loosens what the model trusts.

The baseline is the pair `convert train` calibrated (or, for a model made on the device, the
measured defaults below). A change may tighten either threshold when real held-out evidence
asks for it: at least 3 people with 3 distinct photos each (the crops of one visit count as one
photo), calibrated with those groups kept together. It never loosens past the baseline, and a
small household's baseline is never looser than SAFE_MAX_DISTANCE / SAFE_MIN_PROBABILITY.
"""

from __future__ import annotations

import numpy as np

from edge.facestore import FaceStore
from edge.head import calibrate, evidence, held_out_scores

# The limit 7 people calibrate to on ../shared/data's tuning split is 0.39 (docs/recognition.md);
# 4 people calibrated 0.43 and named 2 of 122 stranger faces (bench/household.py).
SAFE_MAX_DISTANCE = 0.40
SAFE_MIN_PROBABILITY = 0.35
TIGHTEN_AT_MOST = 0.06  # one change never tightens the distance limit by more than this
MIN_PEOPLE, MIN_EVIDENCE = 3, 3


def baseline(meta: dict) -> dict:
    """The thresholds changes are measured against: recorded once, from the trained ones."""
    th = meta.get("thresholds", {})
    base = th.get("baseline")
    if isinstance(base, dict) and {"min_probability", "max_distance"} <= base.keys():
        return base
    return {
        "min_probability": max(float(th.get("min_probability", 0.5)), SAFE_MIN_PROBABILITY),
        "max_distance": min(float(th.get("max_distance", 0.4)), SAFE_MAX_DISTANCE),
        "from": "trained" if "max_distance" in th else "defaults",
    }


def choose(meta: dict, store: FaceStore) -> tuple[dict, str]:
    """The thresholds for the library in `store`, and one line saying what was decided."""
    base = baseline(meta)
    th = meta.get("thresholds", {})
    old_p = float(th.get("min_probability", base["min_probability"]))
    old_d = float(th.get("max_distance", base["max_distance"]))
    n = len(store.labels)
    groups = np.asarray(store.groups if store.groups is not None else store.keys)
    have = evidence(store.y, n, groups)
    p, d = base["min_probability"], base["max_distance"]
    why = "kept"
    if n >= MIN_PEOPLE and have.min() >= MIN_EVIDENCE:
        rules = calibrate(held_out_scores(store.emb, store.y, n, groups=groups))["chosen"]
        p = float(np.clip(rules["min_probability"], base["min_probability"], 0.95))
        d = float(np.clip(rules["max_distance"], base["max_distance"] - TIGHTEN_AT_MOST, d))
        if (p, d) != (base["min_probability"], base["max_distance"]):
            why = f"tightened on held-out evidence of {int(have.sum())} photos"
    else:
        short = [store.labels[i] for i in np.flatnonzero(have < MIN_EVIDENCE)]
        why = (
            f"kept (calibration needs {MIN_PEOPLE}+ people with {MIN_EVIDENCE}+ distinct photos"
            + (f"; short: {', '.join(short[:3])}" if short else "")
            + ")"
        )
    chosen = {"min_probability": round(p, 2), "max_distance": round(d, 2), "baseline": base}
    note = (
        f"thresholds {why}: probability >= {chosen['min_probability']:.2f}, distance <= "
        f"{chosen['max_distance']:.2f} (baseline {base['min_probability']:.2f} / "
        f"{base['max_distance']:.2f}; before {old_p:.2f} / {old_d:.2f})"
    )
    return chosen, note
