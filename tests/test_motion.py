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


def test_regions_say_where_the_scene_changed_and_looking_there_settles_it(data_dir):
    scene = cv2.resize(cv2.imread(str(data_dir / "no_face" / "coffee.png")), (320, 240))
    faces = data_dir / "faces"
    face = cv2.imread(str(splits.heldout_photos(faces, splits.known(faces)[0])[0]))
    watch = SceneWatch()
    assert watch.regions(_noisy(scene, 0)) is None  # never looked: the whole frame
    watch.looked(_noisy(scene, 0))
    assert watch.regions(_noisy(scene, 1)) == []
    visitor = scene.copy()
    visitor[100:140, 200:240] = cv2.resize(face[70:180, 70:180], (40, 40))
    (region,) = watch.regions(_noisy(visitor, 2))
    x, y, w, h = region
    assert x <= 200 and y <= 100 and x + w >= 240 and y + h >= 140  # the face, with room
    assert w * h < 0.25 * 320 * 240  # not the whole frame
    assert watch.regions(_noisy(visitor, 3), [(200, 100, 40, 40)], 0.5) == []  # it is tracked
    watch.looked(_noisy(visitor, 3), [region])
    assert watch.regions(_noisy(visitor, 4)) == []
    brighter = cv2.convertScaleAbs(visitor, alpha=1.0, beta=30)
    assert watch.regions(brighter) is None  # everything changed: the whole frame
