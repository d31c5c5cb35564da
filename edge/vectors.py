"""Face embeddings as unit vectors: one cosine distance for the whole project."""

from __future__ import annotations

import numpy as np


def unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to length 1 along its last axis (a zero vector stays zero)."""
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """1 - cosine similarity of unit vectors `a` and `b` (broadcast over leading axes)."""
    d = 1.0 - np.sum(np.asarray(a, np.float32) * np.asarray(b, np.float32), axis=-1)
    return float(d) if np.ndim(d) == 0 else d
