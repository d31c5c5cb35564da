"""Faces close to a doorbell camera: filling the frame or cut by its edge (issue 24)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import cv2
import pytest

from edge.config import load_config
from edge.detect import create_detector, create_live_detector
from tests import doorbell, splits
from tests.conftest import run_edge

HEIGHT_PER_SIZE = 0.45  # an LFW face is about this share of its photo's height


def _scene(data_dir, photo, face_height: float, shift: float):
    """A doorbell frame with `photo` pasted so its face is `face_height` of the frame high,
    its centre `shift` of the frame's width right of the middle."""
    frame = doorbell._background(data_dir, random.Random(1))
    size = round(doorbell.HEIGHT * face_height / HEIGHT_PER_SIZE)
    doorbell._paste(frame, cv2.imread(str(photo)), doorbell.WIDTH * (0.5 + shift), 240, size)
    return frame


@pytest.fixture(scope="module")
def photos(data_dir):
    faces = data_dir / "faces"
    return [p for name in splits.known(faces) for p in splits.heldout_photos(faces, name)][:10]


def test_live_detector_finds_faces_filling_or_cut_by_the_frame(data_dir, models_dir, photos):
    cfg = load_config(None).detect
    live, haar_only = create_live_detector(cfg), create_detector(cfg)
    found = {"live": 0, "two-stage": 0}
    scenes = [(h, s) for h in (1.0, 1.2) for s in (0.0, 0.25)]
    for photo in photos:
        for height, shift in scenes:
            frame = _scene(data_dir, photo, height, shift)
            found["live"] += len(live.detect(frame)) == 1
            found["two-stage"] += bool(haar_only.detect(frame))
    total = len(photos) * len(scenes)
    assert found["live"] >= 0.9 * total, found
    assert found["two-stage"] < 0.8 * total, found  # what the close-up pass adds
    empty = doorbell._background(data_dir, random.Random(1))
    assert live.detect(empty) == []
    off = create_live_detector(replace(cfg, closeup=0.0))
    assert type(off) is type(haar_only)


@pytest.fixture(scope="module")
def closer_clip(data_dir, tmp_path_factory):
    """Six visits seen 3x closer than tests/doorbell.py: faces 0.7-1 of the frame, most cut."""
    out = tmp_path_factory.mktemp("closer")
    return out / "clip.mp4", doorbell.make_clip(data_dir, out, visits=6, seed=0, zoom=3.0)


@pytest.mark.slow
def test_every_close_up_visitor_gets_an_event(closer_clip, trained_model, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(f"recognize:\n  model: {trained_model}\nunknown_faces:\n  enabled: false\n")
    path, timeline = closer_clip
    proc = run_edge("--config", str(config), "--source", str(path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    score = doorbell.score_events(events, timeline)
    assert score["strangers_named"] == 0, events
    assert score["outside_visits"] == 0, events
    for v in timeline["visits"]:
        arrivals = [
            e
            for e in events
            if e["type"] != "left" and v["first_frame"] <= e["frame"] <= v["last_frame"]
        ]
        assert len(arrivals) == 1, (v, arrivals)


def test_detect_in_checks_the_tracked_faces_and_looks_only_where_the_scene_changed(
    data_dir, models_dir, photos
):
    """A tracked face is found again by the confirmer alone; a tracked box on the empty
    background finds nothing; Haar finds a new face only in a region it is given."""
    detector = create_detector(load_config(None).detect)
    frame = _scene(data_dir, photos[0], 0.3, -0.2)  # a face left of the middle
    (face,) = detector.detect(frame)
    found = detector.detect_in(frame, None, [face.box], [])
    assert len(found) == 1 and found[0].box == pytest.approx(face.box, abs=12)
    x, y, w, h = face.box
    assert detector.detect_in(frame, None, [(x + 3 * w, y, w, h)], []) == []
    around = (x - w // 2, y - h // 2, 2 * w, 2 * h)
    assert len(detector.detect_in(frame, None, [], [around])) == 1
    assert detector.detect_in(frame, None, [], [(x + 3 * w, y, w, h)]) == []
    assert len(detector.detect_in(frame, None, [], None)) == 1  # None: the whole frame


def test_scene_watch_ignores_motion_inside_the_tracked_boxes(data_dir, photos):
    from edge.motion import SceneWatch

    watch = SceneWatch()
    watch.looked(_scene(data_dir, photos[0], 0.3, -0.2))
    moved = _scene(data_dir, photos[1], 0.3, -0.2)  # another face in the same place
    assert watch.changed(moved)
    box = (doorbell.WIDTH * 0.3 - 160, 240 - 160, 320, 320)  # around the pasted photo
    assert not watch.changed(moved, [box], 0.1)
    assert watch.changed(_scene(data_dir, photos[1], 0.3, 0.25), [box], 0.1)  # elsewhere
