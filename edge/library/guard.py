"""A guard against poisoning: faces far from the person's own photos are someone else's."""

from __future__ import annotations

import numpy as np

from edge.facestore import FaceStore
from edge.vectors import cosine_distance, unit


def person_centroid(store: FaceStore, label: str) -> np.ndarray | None:
    """The mean of a person's photos (unaugmented crops), or None for a new person."""
    if label not in store.labels:
        return None
    rows = store.emb[store.y == store.labels.index(label), 0]
    return unit(rows.mean(axis=0)) if len(rows) else None


def far_from_person(
    store: FaceStore, label: str, new: np.ndarray, limit: float
) -> list[tuple[int, float]]:
    """(index, distance) of the new photos (rows of (N_AUG, D)) farther than `limit` from the
    person's own photos; for a new person, from the other new photos (the odd one out)."""
    own = person_centroid(store, label)
    firsts = new[:, 0]
    out = []
    for i, emb in enumerate(firsts):
        if own is not None:
            ref = own
        elif len(firsts) >= 3:
            ref = unit(np.delete(firsts, i, axis=0).mean(axis=0))
        else:
            continue  # one or two photos of a new person: nothing to compare with
        dist = float(cosine_distance(emb, ref))
        if dist > limit:
            out.append((i, dist))
    return out


def looks_like_other(
    store: FaceStore, label: str | None, new: np.ndarray, centroids: np.ndarray, max_distance: float
) -> list[tuple[int, str, float]]:
    """(index, other person, distance) of new photos the model would name as someone else."""
    out = []
    for i, emb in enumerate(new[:, 0]):
        dists = cosine_distance(emb[None, :], centroids)
        for j in np.argsort(dists):
            other = store.labels[j] if j < len(store.labels) else None
            if other is None or other == label or dists[j] > max_distance:
                continue
            out.append((i, other, float(dists[j])))
            break
    return out
