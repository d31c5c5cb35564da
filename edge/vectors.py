"""Cosine distance between face embeddings: the one definition every part uses."""

from __future__ import annotations

import numpy as np


def unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to length 1 along its last axis (a zero vector stays zero)."""
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity along the last axis: (D,) with (D,) gives a scalar, (N, D) with
    (D,) or (N, D) one distance per row. Zero vectors are at distance 1 from anything."""
    dtype = np.result_type(a, b, np.float32)  # float16 store rows in float32, float64 kept
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return 1.0 - np.sum(a * b, axis=-1) / np.maximum(norms, 1e-12)
