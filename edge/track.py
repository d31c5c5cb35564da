"""IoU tracker: the same face across frames, with the best crops of each track kept for recognition."""

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
    crops: list[Crop] = field(default_factory=list)  # best first
    votes: list[Any] = field(default_factory=list)  # identities of the current decision round
    state: dict[str, Any] = field(default_factory=dict)  # owned by the decider

    def add_crop(self, image: np.ndarray, face: Face, frame: Frame) -> Crop:
        """Score this detection's crop; keep it if among the best KEEP_CROPS."""
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
        self.crops.append(crop)
        self.crops.sort(key=lambda c: c.quality, reverse=True)
        del self.crops[KEEP_CROPS:]
        return crop

    def best_untried(self, min_size: int) -> Crop | None:
        """The best crop not yet recognized that is large enough and not clipped."""
        for c in self.crops:
            if not c.tried and not c.clipped and c.size >= min_size:
                return c
        return None


class Tracker:
    """Greedy IoU matching of detections to tracks; tracks unseen for max_missed_s end."""

    def __init__(self, cfg: TrackConfig) -> None:
        self.cfg = cfg
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(self, faces: list[Face], frame: Frame) -> list[Track]:
        """A detection frame: match faces to tracks, start new ones; returns the tracks that ended."""
        pairs = sorted(
            (
                (iou(t.box, f.box), ti, fi)
                for ti, t in enumerate(self.tracks)
                for fi, f in enumerate(faces)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_f: set[int] = set()
        for t in self.tracks:
            t.seen_now = False
        for overlap, ti, fi in pairs:
            if overlap < self.cfg.iou_threshold:
                break
            if ti in used_t or fi in used_f:
                continue
            used_t.add(ti)
            used_f.add(fi)
            self._hit(self.tracks[ti], faces[fi], frame)
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
                )
                t.add_crop(frame.image, f, frame)
                self.tracks.append(t)
        return self.expire(frame)

    def _hit(self, t: Track, f: Face, frame: Frame) -> None:
        t.box, t.face = f.box, f
        t.last_frame, t.last_source_time, t.last_wall_time = (
            frame.index,
            frame.source_time,
            frame.wall_time,
        )
        t.hits += 1
        t.seen_now = True
        t.add_crop(frame.image, f, frame)

    def expire(self, frame: Frame) -> list[Track]:
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
