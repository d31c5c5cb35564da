"""Why the loop named someone or not: the reasons kept with each event (history, web app)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.config import RecognizeConfig
from edge.vectors import cosine_distance


def explain(emitted: Any, model: Any | None, rcfg: RecognizeConfig) -> dict[str, Any]:
    """Why an event named someone or not: votes, probability and distance against their
    thresholds, face size."""
    ev = emitted.event
    _, _, w, h = ev["box"]
    out: dict[str, Any] = {"face_px": [int(w), int(h)], "min_face_px": rcfg.min_face_px}
    track = emitted.track
    decision = track.state.get("decision") if track is not None else None
    if decision is not None:
        out |= {
            "votes": len(decision.crops),
            "votes_needed": rcfg.votes,
            "max_crops": rcfg.max_crops,
        }
    emb = emitted.embedding
    if model is None or emb is None or np.shape(emb) != model.centroids.shape[1:]:
        return out
    emb = np.asarray(emb, np.float32)
    dist = cosine_distance(model.centroids, emb)
    best = int(np.argmin(dist))
    if ev["name"] in model.labels:
        best = model.labels.index(ev["name"])
    out |= {
        "closest": model.labels[best],
        "distance": round(float(dist[best]), 4),
        "max_distance": round(float(model.max_distance), 4),
        "probability": round(float(ev["confidence"]), 4),  # mean over the voting crops
        "min_probability": round(float(model.min_probability), 4),
    }
    return out
