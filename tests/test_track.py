"""IoU tracker and crop scoring on real photos from ../shared/data/faces."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.capture import Frame
from edge.config import TrackConfig
from edge.detect import Face, iou
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
    tracker.update([Face(_shift(box, 300), 0.9)], _frame(image, 1))  # beyond a face size away
    assert [t.id for t in tracker.tracks] == [1, 2]
    ended = []
    for i in range(2, 20):  # the first face is gone; the second keeps being seen
        ended += tracker.update([Face(_shift(box, 300), 0.9)], _frame(image, i))
    assert [t.id for t in ended] == [1]  # after max_missed_s (15 frames at 15 fps)
    assert [t.id for t in tracker.tracks] == [2]


def test_tracks_survive_frames_without_detection(photo):
    """With detect.every_n_frames > 1 the loop calls coast() in between: tracks stay."""
    image, box = photo
    tracker = Tracker(TrackConfig(max_missed_s=1.0))
    tracker.update([Face(box, 0.9)], _frame(image, 0))
    for i in range(1, 10):
        assert tracker.coast(_frame(image, i)) == []
    assert len(tracker.tracks) == 1 and tracker.tracks[0].box == box  # no motion seen yet
    assert [t.id for t in tracker.coast(_frame(image, 16))] == [1]


def test_box_follows_a_moving_face_between_detections(photo):
    """Detection every 5th frame, the face moves 6 px a frame: the box keeps up with it."""
    image, box = photo
    tracker = Tracker(TrackConfig())
    for i in range(30):
        true = _shift(box, 6 * i, -2 * i)
        if i % 5 == 0:
            tracker.update([Face(true, 0.9)], _frame(image, i))
        else:
            tracker.coast(_frame(image, i))
        (t,) = tracker.tracks
        if i >= 10:  # two detections have given the velocity
            assert iou(t.box, true) > 0.9, (i, t.box, true)
    assert t.hits == 6
    tracker.coast(_frame(image, 60))  # no detection for 2 s: carried at most HORIZON_S
    assert t.box == _shift(box, 6 * 25 + 45, -2 * 25 - 15)  # last seen at frame 25, + 0.5 s


def test_fast_move_keeps_its_track(photo):
    """A move that leaves no overlap with the old box but stays within a face size continues
    the track; a face across the frame does not."""
    image, box = photo
    tracker = Tracker(TrackConfig(iou_threshold=0.3))
    tracker.update([Face(box, 0.9)], _frame(image, 0))
    tracker.update([Face(_shift(box, 70), 0.9)], _frame(image, 1))
    assert [t.id for t in tracker.tracks] == [1]
    tracker.update([Face(_shift(box, 400), 0.9)], _frame(image, 2))
    assert [t.id for t in tracker.tracks] == [1, 2]


def test_unconfirmed_box_fades_within_the_detection_interval(photo):
    image, box = photo
    tracker = Tracker(TrackConfig(max_missed_s=1.0))
    tracker.update([Face(box, 0.9)], _frame(image, 0))
    for i in range(1, 5):
        tracker.coast(_frame(image, i))
        assert [t.id for t in tracker.confirmed(5)] == [1]
    tracker.update([], _frame(image, 5))  # the face is gone at the next detection
    assert tracker.confirmed(5) == [] and len(tracker.tracks) == 1  # still kept for matching


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
    for c in t.crops:
        c.tried = True
    tracker.update([Face(box, 0.9)], _frame(blurred, 2))  # worse than both, but fresh
    assert t.best_untried(min_size=40).frame == 2 and len(t.crops) == 1
    x, y, w, h = t.crops[0].face.box  # the crop's face box is relative to the cut
    assert t.crops[0].image.shape[0] > h and t.crops[0].image.shape[1] > w


def test_frontalness_from_blazeface_landmarks():
    eyes = [[100.0, 100.0], [160.0, 100.0]]
    frontal = Face((80, 70, 100, 110), 0.9, np.array(eyes + [[130.0, 130.0]], np.float32))
    turned = Face((80, 70, 100, 110), 0.9, np.array(eyes + [[155.0, 130.0]], np.float32))
    assert frontalness(frontal) == pytest.approx(1.0)
    assert frontalness(turned) < 0.3
    assert frontalness(Face((0, 0, 10, 10), 0.9)) is None
