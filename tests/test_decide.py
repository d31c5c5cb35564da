"""Votes, person-level presence, and the judge with the real trained model on real crops."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from edge.capture import Frame
from edge.config import DecideConfig, RecognizeConfig, TrackConfig, load_config
from edge.decide import UNKNOWN, Decision, Judge, Presence, vote
from edge.detect import Face
from edge.track import Tracker
from tests import splits

N, M, U = "Ann", "Bob", UNKNOWN


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([N], None),
        ([N, N], None),
        ([N, N, N], N),
        ([N, U, N, N], N),
        ([U, U, U], U),  # no name can reach 3 agreeing votes with twice the others
        ([N, M, N, M], None),
        ([N, M, N, M, N, M], U),  # max_crops reached without a clear majority
        ([N, N, M, M, U], U),
        ([U, N, U, N, N, N], N),
    ],
)
def test_vote(results, expected):
    got = vote([(r, 0.8) for r in results], needed=3, max_crops=6)
    assert (got[0] if got else None) == expected


def _frame(index: int, fps: float = 15.0) -> Frame:
    return Frame(np.zeros((480, 640, 3), np.uint8), index, index / fps, time.time())


class _Scene:
    """A tracker and presence fed with decided tracks frame by frame."""

    def __init__(self, away_s: float = 2.0) -> None:
        self.tracker = Tracker(TrackConfig(max_missed_s=0.5))
        self.presence = Presence(DecideConfig(away_s=away_s))
        self.events: list[dict] = []
        self.index = 0

    def step(self, boxes_names: list[tuple[tuple, str, np.ndarray | None]]) -> None:
        frame = _frame(self.index)
        faces = [Face(b, 0.9) for b, _, _ in boxes_names]
        ended = self.tracker.update(faces, frame)
        for t in self.tracker.tracks:
            if t.seen_now and "decision" not in t.state:
                _, name, emb = next(bn for bn in boxes_names if bn[0] == t.box)
                t.state["decision"] = Decision(name, 0.9, embedding=emb)
        self.events += [e.event for e in self.presence.update(frame, self.tracker.tracks, ended)]
        self.index += 1

    def run(self, seconds: float, boxes_names: list) -> None:
        for _ in range(round(seconds * 15)):
            self.step(boxes_names)


BOX_A, BOX_B = (100, 100, 120, 140), (400, 120, 120, 140)


def _shift(box: tuple, dx: int) -> tuple:
    return (box[0] + dx, *box[1:])


def test_one_event_per_visit_across_lost_tracks():
    s = _Scene(away_s=2.0)
    s.run(2, [(BOX_A, N, None)])
    s.run(1, [])  # lost for 1 s: the track ends (0.5 s), the person stays present (2 s)
    s.run(2, [(BOX_B, N, None)])  # found again, new track, same person
    assert [(e["type"], e["name"]) for e in s.events] == [("recognized", N)]
    assert s.tracker.tracks[0].id == 2
    s.run(3, [])
    assert [(e["type"], e["name"]) for e in s.events] == [("recognized", N), ("left", N)]
    left = s.events[-1]
    assert left["track"] == 2 and left["box"] == list(BOX_B)
    assert left["source_time"] - 5.0 >= 2.0  # away_s after the last sighting (frame 74)
    s.run(1, [(BOX_A, N, None)])  # a new visit
    assert [e["type"] for e in s.events] == ["recognized", "left", "recognized"]
    assert [e["visit"] for e in s.events] == [1, 1, 2]


def test_event_boxes_are_detections_not_predictions():
    """Between detections a moving face's box is predicted; events report where it was seen."""
    s = _Scene(away_s=1.0)
    for i in range(5):  # moving 10 px a frame, then detection stops
        s.step([(_shift(BOX_A, 10 * i), N, None)])
    for _ in range(40):
        frame = _frame(s.index)
        ended = s.tracker.coast(frame)
        s.events += [e.event for e in s.presence.update(frame, s.tracker.tracks, ended)]
        s.index += 1
    assert [(e["type"], e["box"]) for e in s.events] == [
        ("recognized", list(BOX_A)),
        ("left", list(_shift(BOX_A, 40))),
    ]


def test_recheck_that_changes_the_name_keeps_the_visit():
    """unknown, then a re-check names the track: the unknown visitor leaves at once and the
    same visit goes on under the name."""
    s = _Scene(away_s=2.0)
    s.run(1, [(BOX_A, U, None)])
    (t,) = s.tracker.tracks
    t.state["decision"] = Decision(N, 0.9)
    s.run(1, [(BOX_A, N, None)])
    s.run(3, [])
    assert [(e["type"], e["name"], e["visit"]) for e in s.events] == [
        (U, None, 1),
        ("left", None, 1),
        ("recognized", N, 1),
        ("left", N, 1),
    ]


def test_unknown_visitors_refound_by_embedding():
    s = _Scene(away_s=2.0)
    e1, e2 = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    s.run(1, [(BOX_A, U, e1)])
    s.run(1, [])
    s.run(1, [(BOX_B, U, e1)])  # same stranger, found again: no new event
    assert [(e["type"], e["name"]) for e in s.events] == [(U, None)]
    s.run(1, [])
    s.run(0.5, [(BOX_A, U, e2)])  # a different face while the first is still "present"
    assert [(e["type"], e["name"]) for e in s.events] == [(U, None), (U, None)]
    s.run(4, [])
    assert [e["type"] for e in s.events].count("left") == 2


def test_unknown_visitor_lost_and_found_in_place_is_one_visit():
    """A stranger's track is lost for 1 s and found where he was, his new crops far from the
    first embedding: the same visit. Away for 3 s, the face there is a new visitor."""
    s = _Scene(away_s=5.0)
    e1, e2, e3 = np.eye(4, dtype=np.float32)[:3]
    s.run(1, [(BOX_A, U, e1)])
    s.run(1, [])
    s.run(1, [(_shift(BOX_A, 30), U, e2)])
    assert [(e["type"], e["visit"]) for e in s.events] == [(U, 1)]
    s.run(3, [])
    s.run(1, [(BOX_A, U, e3)])
    assert [(e["type"], e["visit"]) for e in s.events] == [(U, 1), (U, 2)]


def test_two_people_at_once_and_leave_all():
    s = _Scene()
    s.run(1, [(BOX_A, N, None), (BOX_B, M, None)])
    assert sorted(e["name"] for e in s.events) == [N, M]
    left = s.presence.leave_all(_frame(s.index))
    assert sorted(e.event["name"] for e in left) == [N, M]
    assert {e.event["type"] for e in left} == {"left"} and s.presence.people == {}


def test_event_json_fields():
    s = _Scene()
    s.run(0.2, [(BOX_A, N, None)])
    (ev,) = s.events
    assert list(ev) == [
        "type",
        "name",
        "confidence",
        "track",
        "visit",
        "box",
        "frame",
        "source_time",
        "time",
    ]
    assert ev["box"] == list(BOX_A) and ev["frame"] == 0 and abs(ev["time"] - time.time()) < 60


# --- the judge with the real model ---------------------------------------------------------


@pytest.fixture(scope="module")
def judge_parts(trained_model, models_dir):
    from edge.align import Aligner
    from edge.detect import create_detector
    from edge.recognize import FaceModel

    cfg = load_config(None)
    return (
        cfg,
        create_detector(cfg.detect),
        Aligner(cfg.detect),
        FaceModel.load(trained_model, cfg.recognize),
    )


def _judge(parts, image) -> Decision | None:
    cfg, detector, aligner, model = parts
    judge = Judge(RecognizeConfig(votes=3, max_crops=6, min_face_px=40), model, aligner)
    tracker = Tracker(TrackConfig())
    for i in range(10):
        frame = np.full((480, 640, 3), 100, np.uint8)
        x = 170 + 3 * (i % 3)
        frame[90:390, x : x + 300] = cv2.resize(image, (300, 300))
        f = Frame(frame, i, i / 15, time.time())
        tracker.update(detector.detect(f.image), f)
        judge.step(tracker.tracks, f.source_time)
    assert tracker.tracks, "the face was tracked"
    main = max(tracker.tracks, key=lambda t: t.box[2] * t.box[3])  # LFW: others in the back
    return main.state.get("decision")


def test_judge_names_known_people_and_never_strangers(judge_parts, data_dir):
    """Held-out photos: never a wrong name, mostly the right one; strangers stay unknown."""
    faces = data_dir / "faces"
    size = judge_parts[3].input_size
    right = 0
    for name in splits.known(faces):
        photo = splits.heldout_photos(faces, name)[0]
        d = _judge(judge_parts, cv2.imread(str(photo)))
        assert d is not None, f"{photo.name}: no decision"
        assert d.name in (name, UNKNOWN), f"{photo.name} named {d.name}"
        assert d.embedding is not None and d.crop.shape[:2] == (size, size)
        right += d.name == name
    assert right >= 5, f"only {right} of 7 known people named"
    for name in splits.strangers(faces):
        for photo in splits.heldout_photos(faces, name)[:3]:
            d = _judge(judge_parts, cv2.imread(str(photo)))
            assert d is None or d.name == UNKNOWN, f"stranger {photo.name} named {d.name}"


def test_only_recognizable_faces_keep_detection_on_every_frame():
    """An undecided face too small to recognize wants every frame for EAGER_S only; one of a
    usable size until it is decided or lost."""
    judge = Judge(RecognizeConfig(min_face_px=40), None, None)
    tracker = Tracker(TrackConfig())
    wants = []
    for i in range(40):
        tracker.update([Face((100, 100, 30, 30), 0.9)], _frame(i))
        wants.append(judge.needs_crops(tracker.tracks, i / 15))
    assert wants == [i / 15 < 2.0 for i in range(40)]
    tracker = Tracker(TrackConfig())
    for i in range(40):  # a face of a usable size still undecided (no judge step here)
        tracker.update([Face((100, 100, 60, 60), 0.9)], _frame(i))
        assert judge.needs_crops(tracker.tracks, i / 15)
    wants = []
    for i in range(40, 52):  # the detector misses it: for 0.5 s it keeps trying every frame
        tracker.update([], _frame(i))
        wants.append(judge.needs_crops(tracker.tracks, i / 15))
    assert wants == [(i - 39) / 15 <= 0.5 for i in range(40, 52)]
    assert tracker.tracks  # then the lost track waits to be found at the usual pace


def test_recheck_uses_the_detections_that_run_anyway(judge_parts, data_dir):
    """Once decided, detection runs on every 5th frame only (as in the loop), and the
    re-check every recheck_s still completes on those fresh crops with the same name."""
    _, detector, aligner, model = judge_parts
    faces = data_dir / "faces"
    name = splits.known(faces)[0]
    photo = cv2.resize(cv2.imread(str(splits.heldout_photos(faces, name)[0])), (300, 300))
    judge = Judge(RecognizeConfig(recheck_s=2.0), model, aligner)
    tracker = Tracker(TrackConfig())
    detected, rechecks, decided_at = [], 0, None
    for i in range(8 * 15):
        frame = np.full((480, 640, 3), 100, np.uint8)
        x = 170 + 2 * (i % 10)  # sways a little
        frame[90:390, x : x + 300] = photo
        f = Frame(frame, i, i / 15, time.time())
        if judge.needs_crops(tracker.tracks, f.source_time) or i % 5 == 0:
            detected.append(i)
            tracker.update(detector.detect(frame), f)
        else:
            tracker.coast(f)
        was = [t.state.get("rechecking") for t in tracker.tracks]
        judge.step(tracker.tracks, f.source_time)
        rechecks += sum(
            bool(w) and not t.state["rechecking"] for w, t in zip(was, tracker.tracks, strict=True)
        )
        if (
            decided_at is None
            and tracker.tracks
            and all("decision" in t.state for t in tracker.tracks)
        ):
            decided_at = i
    assert len(tracker.tracks) == 1 and tracker.tracks[0].state["decision"].name == name
    assert decided_at is not None and decided_at < 10
    assert all(i % 5 == 0 for i in detected if i > decided_at), detected
    assert rechecks >= 2, rechecks  # re-checked at about 2 s and 4 s (and 6 s)


def test_judge_without_model_says_unknown_after_votes(judge_parts, data_dir):
    _, detector, _, _ = judge_parts
    faces = data_dir / "faces"
    photo = cv2.imread(str(splits.heldout_photos(faces, splits.known(faces)[0])[0]))
    judge = Judge(RecognizeConfig(votes=3), None, None)
    tracker = Tracker(TrackConfig())
    decided_at = None
    for i in range(6):
        frame = np.full((480, 640, 3), 100, np.uint8)
        frame[90:390, 170:470] = cv2.resize(photo, (300, 300))
        f = Frame(frame, i, i / 15, time.time())
        tracker.update(detector.detect(frame), f)
        if judge.step(tracker.tracks, f.source_time) and decided_at is None:
            decided_at = i
    assert decided_at == 2  # three usable crops
    assert tracker.tracks[0].state["decision"].name == UNKNOWN


def test_unknown_track_split_while_old_track_coasts():
    """A fast move breaks the track; the old one still coasts: same face, no second event."""
    s = _Scene(away_s=2.0)
    e1 = np.eye(4, dtype=np.float32)[0]
    s.run(0.5, [(BOX_A, U, e1)])
    s.run(0.5, [(BOX_B, U, e1)])  # new track at once; track 1 lives on for max_missed_s
    assert [(e["type"], e["name"]) for e in s.events] == [(U, None)]
    s2 = _Scene(away_s=2.0)  # detect-only: no embeddings, the coasting visitor is taken
    s2.run(0.5, [(BOX_A, U, None)])
    s2.run(0.5, [(BOX_B, U, None)])
    assert [(e["type"], e["name"]) for e in s2.events] == [(U, None)]
