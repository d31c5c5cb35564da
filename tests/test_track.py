"""IoU tracker and crop scoring on real photos from ../shared/data/faces."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.capture import Frame
from edge.config import TrackConfig
from edge.detect import Face
from edge.track import Tracker, frontalness, score_crop
from tests import splits


@pytest.fixture(scope="module")
def photo(data_dir):
    """A held-out photo of a known person pasted on a 640x480 grey frame, and its face box."""
    faces = data_dir / "faces"
    img = cv2.imread(str(splits.heldout_photos(faces, splits.known(faces)[0])[0]))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[100:350, 200:450] = img
    return frame, (270, 170, 110, 120)  # LFW: the face sits in the middle of the 250 px photo


def _frame(image: np.ndarray, index: int, fps: float = 15.0) -> Frame:
    return Frame(image, index, index / fps, time.time())


def _shift(box, dx, dy=0):
    x, y, w, h = box
    return (x + dx, y + dy, w, h)


def test_one_track_follows_a_moving_face(photo):
    image, box = photo
    tracker = Tracker(TrackConfig(iou_threshold=0.3, max_missed_s=1.0))
    ids = set()
    for i in range(10):
        tracker.update([Face(_shift(box, 8 * i), 0.9)], _frame(image, i))
        ids.update(t.id for t in tracker.tracks)
    assert len(ids) == 1 and len(tracker.tracks) == 1
    t = tracker.tracks[0]
    assert (t.first_frame, t.last_frame, t.hits) == (0, 9, 10)
    assert t.box == _shift(box, 72)


def test_jump_starts_a_new_track_and_old_one_expires(photo):
    image, box = photo
    tracker = Tracker(TrackConfig(iou_threshold=0.3, max_missed_s=1.0))
    tracker.update([Face(box, 0.9)], _frame(image, 0))
    tracker.update([Face(_shift(box, 300), 0.9)], _frame(image, 1))
    assert [t.id for t in tracker.tracks] == [1, 2]
    ended = []
    for i in range(2, 20):  # the first face is gone; the second keeps being seen
        ended += tracker.update([Face(_shift(box, 300), 0.9)], _frame(image, i))
    assert [t.id for t in ended] == [1]  # after max_missed_s (15 frames at 15 fps)
    assert [t.id for t in tracker.tracks] == [2]


def test_tracks_survive_frames_without_detection(photo):
    """With detect.every_n_frames > 1 the loop calls expire() in between: tracks stay."""
    image, box = photo
    tracker = Tracker(TrackConfig(max_missed_s=1.0))
    tracker.update([Face(box, 0.9)], _frame(image, 0))
    for i in range(1, 10):
        assert tracker.expire(_frame(image, i)) == []
    assert len(tracker.tracks) == 1
    assert [t.id for t in tracker.expire(_frame(image, 16))] == [1]


def test_two_faces_keep_their_own_tracks(photo):
    image, box = photo
    tracker = Tracker(TrackConfig())
    other = _shift(box, -200, 150)
    for i in range(5):
        tracker.update(
            [Face(_shift(other, i), 0.8), Face(_shift(box, 5 * i), 0.9)], _frame(image, i)
        )
    boxes = {t.id: t.box for t in tracker.tracks}
    assert boxes == {1: _shift(other, 4), 2: _shift(box, 20)}


def test_crop_quality_prefers_sharp_large_unclipped(photo):
    image, box = photo
    sharp, clipped = score_crop(image, Face(box, 0.9))
    blurred_img = image.copy()
    x, y, w, h = box
    blurred_img[y : y + h, x : x + w] = cv2.GaussianBlur(image[y : y + h, x : x + w], (0, 0), 3)
    blurred, _ = score_crop(blurred_img, Face(box, 0.9))
    small_img = cv2.resize(image, None, fx=0.4, fy=0.4)
    small, _ = score_crop(small_img, Face(tuple(int(v * 0.4) for v in box), 0.9))
    edge, edge_clipped = score_crop(image, Face((0, y, w, h), 0.9))
    assert not clipped and edge_clipped
    assert sharp > blurred and sharp > small and sharp > edge


def test_track_keeps_best_crops_and_skips_unusable(photo):
    image, box = photo
    tracker = Tracker(TrackConfig())
    blurred = cv2.GaussianBlur(image, (0, 0), 4)
    tracker.update([Face(box, 0.9)], _frame(blurred, 0))
    tracker.update([Face(box, 0.9)], _frame(image, 1))
    t = tracker.tracks[0]
    best = t.best_untried(min_size=40)
    assert best is not None and best.frame == 1  # the sharp one first
    best.tried = True
    assert t.best_untried(min_size=40).frame == 0
    assert t.best_untried(min_size=200) is None  # faces under recognize.min_face_px are skipped
    x, y, w, h = t.crops[0].face.box  # the crop's face box is relative to the cut
    assert t.crops[0].image.shape[0] > h and t.crops[0].image.shape[1] > w


def test_frontalness_from_blazeface_landmarks():
    eyes = [[100.0, 100.0], [160.0, 100.0]]
    frontal = Face((80, 70, 100, 110), 0.9, np.array(eyes + [[130.0, 130.0]], np.float32))
    turned = Face((80, 70, 100, 110), 0.9, np.array(eyes + [[155.0, 130.0]], np.float32))
    assert frontalness(frontal) == pytest.approx(1.0)
    assert frontalness(turned) < 0.3
    assert frontalness(Face((0, 0, 10, 10), 0.9)) is None
