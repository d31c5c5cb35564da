"""The scene watch on real pictures: camera noise is no change, a face coming in is."""

from __future__ import annotations

import cv2
import numpy as np

from edge.motion import SceneWatch
from tests import splits


def _noisy(image: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 3.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def test_noise_is_no_change_a_small_face_is(data_dir):
    scene = cv2.resize(cv2.imread(str(data_dir / "no_face" / "coffee.png")), (320, 240))
    faces = data_dir / "faces"
    face = cv2.imread(str(splits.heldout_photos(faces, splits.known(faces)[0])[0]))
    watch = SceneWatch()
    assert watch.changed(_noisy(scene, 0))  # the detector has never looked
    watch.looked(_noisy(scene, 0))
    assert not any(watch.changed(_noisy(scene, i)) for i in range(1, 20))
    visitor = scene.copy()
    visitor[100:130, 150:180] = cv2.resize(face[70:180, 70:180], (30, 30))  # a 30-px face
    assert watch.changed(_noisy(visitor, 21))
    watch.looked(_noisy(visitor, 21))
    assert not watch.changed(_noisy(visitor, 22))  # compared with what the detector saw last
    brighter = cv2.convertScaleAbs(scene, alpha=1.0, beta=30)
    assert watch.changed(brighter)  # a light switched on: look again
