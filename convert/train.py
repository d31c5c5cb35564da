"""Embeddings of the training crops through the float backbone, cached per crop.

The head itself (softmax training, CV scores, thresholds) is numpy and lives in edge/head.py,
so that the Pi can refit it without TensorFlow (`edge enroll`).
"""

from __future__ import annotations

import logging

import numpy as np

from convert.backbone import Backbone
from convert.dataset import CropCache, Sample
from edge.head import N_AUG, augment

log = logging.getLogger("convert.train")


def embed_samples(backbone: Backbone, samples: list[Sample], cache: CropCache) -> np.ndarray:
    """(len(samples), N_AUG, D) embeddings, from the cache when the same crop was seen before."""
    kind = f"emb-{backbone.name}-{backbone.fingerprint}"
    out = np.zeros((len(samples), N_AUG, backbone.embedding_size), np.float32)
    todo = []
    for i, s in enumerate(samples):
        hit = cache.get(kind, s.key)
        if hit is not None and hit["emb"].shape == out.shape[1:]:
            out[i] = hit["emb"]
        else:
            todo.append(i)
    if todo:
        log.info(
            "embedding %d new photos with %s (%d cached)",
            len(todo),
            backbone.name,
            len(samples) - len(todo),
        )
        batch = np.concatenate([augment(samples[i].crop_rgb, samples[i].key) for i in todo])
        emb = backbone.embed(batch).reshape(len(todo), N_AUG, -1)
        for j, i in enumerate(todo):
            out[i] = emb[j]
            cache.put(kind, samples[i].key, emb=emb[j])
    return out
