"""edge.vectors.cosine_distance: the one cosine distance, on single vectors and on rows."""

from __future__ import annotations

import numpy as np

from edge.vectors import cosine_distance


def test_cosine_distance_on_vectors_rows_and_zero_vectors():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert float(cosine_distance(a, a * 3)) == 0.0
    assert float(cosine_distance(a, b)) == 1.0
    assert float(cosine_distance(a, -a)) == 2.0
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosine_distance(rows, a), [0.0, 1.0, 1 - 2**-0.5], atol=1e-6)
    np.testing.assert_allclose(cosine_distance(rows, rows[::-1]), [1 - 2**-0.5, 0.0, 1 - 2**-0.5], atol=1e-6)  # fmt: skip
    assert float(cosine_distance(np.zeros(2), a)) == 1.0


def test_it_matches_the_dot_product_on_unit_embeddings():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 128)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.testing.assert_allclose(cosine_distance(emb, emb[0]), 1.0 - emb @ emb[0], atol=1e-6)
