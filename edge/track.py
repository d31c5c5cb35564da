"""Tracker: the same face across frames (constant-velocity prediction, IoU then distance
matching), with the best crops of each track kept for recognition."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.capture import Frame
from edge.config import TrackConfig
from edge.detect import Face, iou

KEEP_CROPS = 4  # best crops kept per track
CUT_MARGIN = 0.6  # context around the box: the aligner rotates and the landmark model looks wider
SMOOTHING = 0.5  # weight of the newest velocity measurement
HORIZON_S = 0.5  # longest a box is carried along its velocity without a detection
NEAR = 0.75  # second pass: centres closer than this fraction of the track's box size match
SIZE_RATIO = 1.5  # ... if neither box is more than this much larger than the other


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian on a 64x64 resample (comparable across face sizes)."""
    if gray.size == 0:
        return 0.0
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_64F).var())


def frontalness(face: Face) -> float | None:
    """1.0 for a face looking at the camera, towards 0 when turned; None without landmarks."""
    lm = face.landmarks
    if lm is None or len(lm) < 3:
        return None
    if len(lm) >= 468:  # face mesh: outer eye corners 33 / 263, nose tip 1
        right, left, nose = lm[33], lm[263], lm[1]
    else:  # BlazeFace (and 5-point) order: right eye, left eye, nose tip, ...
        right, left, nose = lm[0], lm[1], lm[2]
    eye_dist = float(np.hypot(*(left - right)))
    if eye_dist < 1e-3:
        return 0.0
    mid = (left + right) / 2.0
    offset = abs(float(nose[0] - mid[0])) / eye_dist
    return float(np.clip(1.0 - 2.0 * offset, 0.0, 1.0))


@dataclass(eq=False)
class Crop:
    """A cut of the full-res frame around one detection, with the face in cut coordinates."""

    image: np.ndarray
    face: Face  # box/landmarks relative to `image`
    quality: float
    size: int  # min(w, h) of the face in full-res px
    frame: int
    source_time: float
    clipped: bool  # the box touches the frame edge: part of the face may be missing
    tried: bool = False


def cut(image: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
    """The region around `face` with a margin, and the face translated into it."""
    h, w = image.shape[:2]
    x, y, bw, bh = face.box
    m = int(max(bw, bh) * CUT_MARGIN)
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(w, x + bw + m), min(h, y + bh + m)
    lm = None if face.landmarks is None else face.landmarks - np.array([x0, y0], np.float32)
    rel = Face(box=(x - x0, y - y0, bw, bh), score=face.score, landmarks=lm)
    return image[y0:y1, x0:x1].copy(), rel


def score_crop(image: np.ndarray, face: Face) -> tuple[float, bool]:
    """Crop quality from size, sharpness and frontalness; and whether the box is clipped."""
    h, w = image.shape[:2]
    x, y, bw, bh = face.box
    clipped = x <= 0 or y <= 0 or x + bw >= w or y + bh >= h
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
    gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY) if x1 > x0 and y1 > y0 else None
    sharp = sharpness(gray) if gray is not None else 0.0
    front = frontalness(face)
    quality = (
        min(min(bw, bh), 160)
        / 160.0
        * (sharp / (sharp + 100.0))
        * (0.5 + 0.5 * (0.7 if front is None else front))
    )
    return quality * (0.3 if clipped else 1.0), clipped


def _centre(box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.array([x + w / 2.0, y + h / 2.0])


def near(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Centre distance of b from a in units of a's size; inf when their sizes differ too much."""
    ratio = max(a[2], b[2]) / max(1, min(a[2], b[2]))
    if ratio > SIZE_RATIO:
        return float("inf")
    return float(np.hypot(*(_centre(a) - _centre(b)))) / max(1.0, max(a[2], a[3]))


@dataclass(eq=False)
class Track:
    """One face followed across frames."""

    id: int
    box: tuple[int, int, int, int]
    face: Face
    first_frame: int
    first_source_time: float
    first_wall_time: float
    last_frame: int
    last_source_time: float
    last_wall_time: float
    hits: int = 1
    seen_now: bool = True  # matched a detection in the latest detection frame
    last_step: int = 0  # the tracker step of the latest match
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # of the centre, px/s
    crops: list[Crop] = field(default_factory=list)  # best first
    last_crop: Crop | None = None  # the latest detection's crop, kept among the best or not
    votes: list[Any] = field(default_factory=list)  # identities of the current decision round
    state: dict[str, Any] = field(default_factory=dict)  # owned by the decider

    def add_crop(self, image: np.ndarray, face: Face, frame: Frame) -> Crop:
        """Score this detection's crop; keep it if among the best KEEP_CROPS not yet tried
        (tried ones live on in the votes, so a fresh crop is never shut out by them)."""
        quality, clipped = score_crop(image, face)
        region, rel = cut(image, face)
        crop = Crop(
            image=region,
            face=rel,
            quality=quality,
            size=min(face.box[2], face.box[3]),
            frame=frame.index,
            source_time=frame.source_time,
            clipped=clipped,
        )
        self.last_crop = crop
        self.crops = [c for c in self.crops if not c.tried] + [crop]
        self.crops.sort(key=lambda c: c.quality, reverse=True)
        del self.crops[KEEP_CROPS:]
        return crop

    def predict(self, source_time: float) -> None:
        """Move the latest detection's box along the velocity (for at most HORIZON_S)."""
        dt = max(0.0, min(source_time - self.last_source_time, HORIZON_S))
        x, y, w, h = self.face.box
        self.box = (round(x + self.velocity[0] * dt), round(y + self.velocity[1] * dt), w, h)

    def best_untried(self, min_size: int, clipped: bool = False) -> Crop | None:
        """The best crop not yet recognized that is large enough and not clipped (or, with
        `clipped`, clipped too: the best of them still ranks first, clipped ones score lower)."""
        for c in self.crops:
            if not c.tried and (clipped or not c.clipped) and c.size >= min_size:
                return c
        return None


class Tracker:
    """Detections matched to predicted boxes by IoU, then by centre distance; tracks unseen
    for max_missed_s end."""

    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self.tracks: list[Track] = []
        self.step = 0  # frames seen by update() or coast()
        self._ids = itertools.count(1)

    def update(self, faces: list[Face], frame: Frame) -> list[Track]:
        """A detection frame: match faces to tracks, start new ones; returns the tracks that ended."""
        self._advance(frame)
        for t in self.tracks:
            t.seen_now = False
        used_t: set[int] = set()
        used_f: set[int] = set()
        pairs = [(ti, fi) for ti in range(len(self.tracks)) for fi in range(len(faces))]
        overlaps = sorted(
            ((iou(self.tracks[ti].box, faces[fi].box), ti, fi) for ti, fi in pairs), reverse=True
        )
        self._pair(
            [(ti, fi) for v, ti, fi in overlaps if v >= self.cfg.iou_threshold],
            faces,
            frame,
            used_t,
            used_f,
        )
        left = [(ti, fi) for ti, fi in pairs if ti not in used_t and fi not in used_f]
        distances = sorted((near(self.tracks[ti].box, faces[fi].box), ti, fi) for ti, fi in left)
        self._pair([(ti, fi) for d, ti, fi in distances if d < NEAR], faces, frame, used_t, used_f)
        for fi, f in enumerate(faces):
            if fi not in used_f:
                t = Track(
                    id=next(self._ids),
                    box=f.box,
                    face=f,
                    first_frame=frame.index,
                    first_source_time=frame.source_time,
                    first_wall_time=frame.wall_time,
                    last_frame=frame.index,
                    last_source_time=frame.source_time,
                    last_wall_time=frame.wall_time,
                    last_step=self.step,
                )
                t.add_crop(frame.image, f, frame)
                self.tracks.append(t)
        return self._expire(frame)

    def coast(self, frame: Frame) -> list[Track]:
        """A frame without detection: boxes move along their velocity; returns the tracks that ended."""
        self._advance(frame)
        return self._expire(frame)

    def confirmed(self, within: int) -> list[Track]:
        """Tracks matched to a detection within the last `within` steps (what a preview shows)."""
        return [t for t in self.tracks if self.step - t.last_step < within]

    def _pair(
        self,
        pairs: list[tuple[int, int]],
        faces: list[Face],
        frame: Frame,
        used_t: set[int],
        used_f: set[int],
    ) -> None:
        """Match (track, face) pairs in order, each track and face at most once."""
        for ti, fi in pairs:
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            self._hit(self.tracks[ti], faces[fi], frame)

    def _advance(self, frame: Frame) -> None:
        self.step += 1
        for t in self.tracks:
            t.predict(frame.source_time)

    def _hit(self, t: Track, f: Face, frame: Frame) -> None:
        dt = frame.source_time - t.last_source_time
        if dt > 0:
            measured = (_centre(f.box) - _centre(t.face.box)) / dt
            t.velocity = (
                measured if t.hits == 1 else SMOOTHING * measured + (1 - SMOOTHING) * t.velocity
            )
        t.box, t.face = f.box, f
        t.last_frame, t.last_source_time, t.last_wall_time = (
            frame.index,
            frame.source_time,
            frame.wall_time,
        )
        t.hits += 1
        t.seen_now = True
        t.last_step = self.step
        t.add_crop(frame.image, f, frame)

    def _expire(self, frame: Frame) -> list[Track]:
        """End tracks not seen for longer than max_missed_s (source time); returns them."""
        ended = [
            t for t in self.tracks if frame.source_time - t.last_source_time > self.cfg.max_missed_s
        ]
        if ended:
            self.tracks = [t for t in self.tracks if t not in ended]
        return ended

    def clear(self) -> list[Track]:
        """End every track (shutdown); returns them."""
        ended, self.tracks = self.tracks, []
        return ended
