"""The classifier head on face embeddings, in numpy: softmax training, CV scores, thresholds.

Rejection: a crop is named only when the head's top probability >= min_probability AND its
cosine distance to that person's centroid <= max_distance. Both thresholds are tuned on
held-out scores: known people from k-fold splits, strangers from leave-one-person-out
(plus the `_unknown/` photos). Used by `convert train` on a PC and by `edge enroll` on the Pi.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edge.progress import progress
from edge.vectors import cosine_distance

log = logging.getLogger("edge.head")

N_AUG = 4  # per photo: original, mirrored, brightness-changed, both


@dataclass
class Head:
    """Softmax layer on the embedding plus the per-class centroids used for rejection."""

    weights: np.ndarray  # (D, N)
    bias: np.ndarray  # (N,)
    centroids: np.ndarray  # (N, D), L2-normalized

    def scores(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predicted class, its probability, cosine distance to its centroid) per row."""
        probs = softmax(emb @ self.weights + self.bias)
        pred = probs.argmax(axis=1)
        dist = cosine_distance(emb, self.centroids[pred])
        return pred, probs[np.arange(len(pred)), pred], dist


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def augment(crop_rgb: np.ndarray, key: str) -> np.ndarray:
    """N_AUG variants of one crop; the brightness factors are seeded by the file's key."""
    rng = np.random.default_rng(int(key[:8], 16))
    flip = crop_rgb[:, ::-1]
    f1, f2 = rng.uniform(0.6, 1.4, size=2)

    def bright(img: np.ndarray, f: float) -> np.ndarray:
        return np.clip(img.astype(np.float32) * f, 0, 255).astype(np.uint8)

    return np.stack([crop_rgb, flip, bright(crop_rgb, f1), bright(flip, f2)])


def fit_head(
    emb: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, epochs: int = 40
) -> Head:
    """Train softmax(emb @ W + b) with Adam; rows with y = -1 (strangers) target uniform."""
    rng = np.random.default_rng(seed)
    m, d = emb.shape
    target = np.full((m, n_classes), 1.0 / n_classes, np.float32)
    known = y >= 0
    target[known] = 0.0
    target[np.flatnonzero(known), y[known]] = 1.0
    w = rng.normal(0.0, 0.01, (d, n_classes)).astype(np.float32)
    b = np.zeros(n_classes, np.float32)
    params = [w, b]
    mom = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    lr, l2, b1, b2, step = 0.05, 1e-4, 0.9, 0.999, 0
    batch = 32
    for _ in range(epochs):
        order = rng.permutation(m)
        for start in range(0, m, batch):
            idx = order[start : start + batch]
            x, t = emb[idx], target[idx]
            p = softmax(x @ w + b)
            g = (p - t) / len(idx)
            grads = [x.T @ g + l2 * w, g.sum(axis=0)]
            step += 1
            for k, (param, grad) in enumerate(zip(params, grads, strict=True)):
                mom[k] = b1 * mom[k] + (1 - b1) * grad
                vel[k] = b2 * vel[k] + (1 - b2) * grad**2
                mhat = mom[k] / (1 - b1**step)
                vhat = vel[k] / (1 - b2**step)
                param -= lr * mhat / (np.sqrt(vhat) + 1e-8)
    centroids = np.zeros((n_classes, d), np.float32)
    for c in range(n_classes):
        rows = emb[y == c]
        if len(rows):
            centroids[c] = rows.mean(axis=0)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return Head(w, b, centroids)


def _rows(emb: np.ndarray, y: np.ndarray, idx: np.ndarray, augmented: bool) -> tuple:
    e = emb[idx] if augmented else emb[idx, :1]
    return e.reshape(-1, emb.shape[-1]), np.repeat(y[idx], e.shape[1])


def _folds(y: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Stratified fold index per photo (strangers, y = -1, spread too); rows of one group (the
    crops of one visit) stay in one fold: they are one piece of evidence, not several."""
    rng = np.random.default_rng(seed)
    groups = np.arange(len(y)) if groups is None else groups
    fold = np.zeros(len(y), int)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        ids = rng.permutation(np.unique(groups[members]))
        where = {g: i % k for i, g in enumerate(ids.tolist())}
        fold[members] = [where[g] for g in groups[members].tolist()]
    return [np.flatnonzero(fold == i) for i in range(k)]


def evidence(y: np.ndarray, n_classes: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Distinct pieces of evidence (photos; a visit counts once) per person."""
    groups = np.arange(len(y)) if groups is None else groups
    return np.array([len(np.unique(groups[y == c])) for c in range(n_classes)], int)


def held_out_scores(
    emb: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, groups: np.ndarray | None = None
) -> dict:
    """Scores of photos unseen by their head: k-fold for people, leave-one-person-out for
    strangers; `groups` keeps the crops of one visit together."""
    counts = evidence(y, n_classes, groups)
    k = int(max(2, min(5, counts.min())))  # a one-photo person still leaves training data
    known = {"pred": [], "true": [], "prob": [], "dist": []}
    stranger = {"prob": [], "dist": []}
    leave_out = n_classes if n_classes >= 3 else 0  # with 2 people, one left out leaves one class
    bar = progress(total=k + leave_out, desc="calibrate", unit="fit")
    for test in _folds(y, k, seed, groups):
        train = np.setdiff1d(np.arange(len(y)), test)
        head = fit_head(*_rows(emb, y, train, True), n_classes, seed)
        ex, ey = _rows(emb, y, test, False)
        pred, prob, dist = head.scores(ex)
        kn = ey >= 0
        known["pred"] += pred[kn].tolist()
        known["true"] += ey[kn].tolist()
        known["prob"] += prob[kn].tolist()
        known["dist"] += dist[kn].tolist()
        stranger["prob"] += prob[~kn].tolist()
        stranger["dist"] += dist[~kn].tolist()
        bar.update()
    for c in range(leave_out):
        keep = y != c
        yy = y[keep].copy()
        yy[yy > c] -= 1
        head = fit_head(*_rows(emb[keep], yy, np.arange(len(yy)), True), n_classes - 1, seed)
        _, prob, dist = head.scores(_rows(emb, y, np.flatnonzero(y == c), False)[0])
        stranger["prob"] += prob.tolist()
        stranger["dist"] += dist.tolist()
        bar.update()
    bar.close()
    return {
        "folds": k,
        "known": {key: np.asarray(v) for key, v in known.items()},
        "stranger": {key: np.asarray(v) for key, v in stranger.items()},
    }


def rates(scores: dict, min_probability: float, max_distance: float) -> tuple[float, float]:
    """(known named correctly, strangers rejected) fractions under these thresholds."""
    kn, st = scores["known"], scores["stranger"]
    accept = (kn["prob"] >= min_probability) & (kn["dist"] <= max_distance)
    known_ok = float(np.mean(accept & (kn["pred"] == kn["true"]))) if len(kn["pred"]) else 0.0
    if len(st["prob"]) == 0:
        return known_ok, float("nan")
    rejected = (st["prob"] < min_probability) | (st["dist"] > max_distance)
    return known_ok, float(np.mean(rejected))


PROB_GRID = np.round(np.arange(0.0, 0.96, 0.05), 2)
DIST_GRID = np.round(np.arange(0.2, 1.21, 0.01), 2)


def calibrate(scores: dict) -> dict:
    """Thresholds maximizing known-correct + strangers-rejected; also each rule alone."""

    def best(probs: np.ndarray, dists: np.ndarray) -> dict:
        grid = [(p, d, *rates(scores, p, d)) for p in probs for d in dists]
        top = max(g[2] + g[3] for g in grid)
        tied = [g for g in grid if g[2] + g[3] >= top - 1e-9]
        # the middle of the plateau: median probability, then the median distance there
        ps = sorted({g[0] for g in tied})
        p_mid = ps[len(ps) // 2]
        row = sorted((g for g in tied if g[0] == p_mid), key=lambda g: g[1])
        p, d, kr, sr = row[len(row) // 2]
        return {
            "min_probability": float(p),
            "max_distance": float(d),
            "known_accuracy": round(kr, 4),
            "stranger_rejection": round(sr, 4),
        }

    if len(scores["stranger"]["prob"]) == 0:
        log.warning(
            "no strangers to calibrate on (need 3+ people or an _unknown/ folder): seed thresholds 0.5 / 0.4"
        )
        kr, _ = rates(scores, 0.5, 0.4)
        rule = {
            "min_probability": 0.5,
            "max_distance": 0.4,
            "known_accuracy": round(kr, 4),
            "stranger_rejection": None,
        }
        return {"chosen": rule, "probability_only": None, "distance_only": None}
    return {
        "chosen": best(PROB_GRID, DIST_GRID),
        "probability_only": best(PROB_GRID, np.array([2.0])),
        "distance_only": best(np.array([0.0]), DIST_GRID),
    }
