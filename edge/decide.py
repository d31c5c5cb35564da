"""Name or unknown per track (votes over several crops), and person-level presence events.

A track is named only when enough crops agree and few disagree; everything else is unknown.
A person gets one `recognized` (or `unknown`) event per visit and one `left` after
decide.away_s without being seen, however often their track is lost and found again; every
event of a visit carries the same `visit` id.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.capture import Frame
from edge.config import DecideConfig, RecognizeConfig
from edge.track import Crop, Track, near
from edge.vectors import cosine_distance

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
SAME_UNKNOWN_DISTANCE = 0.5  # cosine distance under which a re-found unknown is the same visitor
REFIND_S, REFIND_NEAR = 2.0, 1.0  # a lost unknown found again: seconds, face sizes away
EAGER_S = 2.0  # an undecided track this young gets detection on every frame, usable crop or not
LOST_S = 0.5  # ... unless the detector has not found it for this long
CLIPPED_S = 1.0  # a track this old with no whole face yet is judged from its clipped crops


@dataclass
class Decision:
    """What a track is: a name or UNKNOWN, with the crop and embedding that best show it."""

    name: str
    confidence: float
    crop: np.ndarray | None = None  # aligned crop (model input) or the raw cut in detect-only
    embedding: np.ndarray | None = None
    crops: list[tuple[np.ndarray, np.ndarray | None, float]] = field(default_factory=list)
    # ^ every (crop, embedding, quality) that voted for `name`: an unknown visitor's are kept


def vote(results: list[tuple[str, float]], needed: int, max_crops: int) -> tuple[str, float] | None:
    """(name, confidence) once the (name, confidence) results settle it, else None.

    A name needs `needed` agreeing results and at least twice as many as all the others
    together (unknown included). Unknown once no name can get there within max_crops.
    """
    if not results:
        return None
    names = Counter(n for n, _ in results if n != UNKNOWN)
    n = len(results)
    if names:
        top, count = names.most_common(1)[0]
        if count >= needed and count >= 2 * (n - count):
            conf = float(np.mean([c for name, c in results if name == top]))
            return top, conf
    left = max(0, max_crops - n)
    best = names.most_common(1)[0][1] if names else 0
    for extra in range(left + 1):  # could some name still win with the remaining crops?
        c = best + extra
        if c >= needed and c >= 2 * (n + extra - c):
            return None
    unknowns = [c for name, c in results if name == UNKNOWN]
    return UNKNOWN, float(np.mean(unknowns)) if unknowns else 0.0


class Judge:
    """Runs the face model on each track's best untried crops until the vote settles."""

    def __init__(self, cfg: RecognizeConfig, model: Any | None, aligner: Any | None) -> None:
        self.cfg = cfg
        self.model = model  # edge.recognize.FaceModel, or None: detect only (everyone unknown)
        self.aligner = aligner
        self.crop_seconds: deque[float] = deque(maxlen=5000)  # align + identify, per crop

    def needs_crops(self, tracks: list[Track], now: float) -> bool:
        """True while a track in view is undecided and young or showing a usable face: it
        wants a detection on every frame. Re-checks take the crops of detections that run anyway."""
        return any(t.state.get("decision") is None and self._promising(t, now) for t in tracks)

    def _promising(self, t: Track, now: float) -> bool:
        if now - t.last_source_time > LOST_S:  # lost: it waits to be found (or to end)
            return False
        c = t.last_crop
        usable = (
            c is not None
            and (not c.clipped or self._clipped_ok(t))
            and c.size >= self.cfg.min_face_px
        )
        return usable or t.last_source_time - t.first_source_time < EAGER_S

    @staticmethod
    def _clipped_ok(t: Track) -> bool:
        """A face cut by the frame's edge for CLIPPED_S (a visitor leaning in) is judged from
        its clipped crops: it gets at least an `unknown` event, and a name only if the vote
        agrees as for any face."""
        return t.last_source_time - t.first_source_time >= CLIPPED_S

    def step(self, tracks: list[Track], now: float) -> list[Track]:
        """One crop per undecided track; returns tracks whose decision is new or changed."""
        changed = []
        for t in tracks:
            st = t.state
            decision: Decision | None = st.get("decision")
            if decision is not None and not st.get("rechecking"):
                if self.cfg.recheck_s > 0 and now - st["decided_at"] >= self.cfg.recheck_s:
                    st["rechecking"] = True
                    t.votes = []
                    t.crops.clear()  # a re-check votes on crops taken from now on
                continue
            crop = t.best_untried(self.cfg.min_face_px)
            if crop is None and decision is None and self._clipped_ok(t):
                crop = t.best_untried(self.cfg.min_face_px, clipped=True)
            if crop is None:
                continue
            crop.tried = True
            t.votes.append(self._identify(crop))
            result = vote([(v[0], v[1]) for v in t.votes], self.cfg.votes, self.cfg.max_crops)
            if result is None:
                continue
            name, conf = result
            best = max((v for v in t.votes if v[0] == name), key=lambda v: v[4])
            crops = [(v[2], v[3], v[4]) for v in t.votes if v[0] == name]
            new = Decision(name, conf, crop=best[2], embedding=best[3], crops=crops)
            st["decided_at"] = now
            st["rechecking"] = False
            t.votes = []
            if decision is None or decision.name != name:
                changed.append(t)
                if decision is not None:
                    log.info("track %d re-checked: %s -> %s", t.id, decision.name, name)
            st["decision"] = new
        return changed

    def _identify(self, crop: Crop) -> tuple[str, float, np.ndarray, np.ndarray | None, float]:
        """(name, confidence, crop image, embedding, quality) for one crop."""
        if self.model is None:
            return UNKNOWN, 0.0, crop.image, None, crop.quality
        t0 = time.perf_counter()
        aligned = self.aligner.crop(crop.image, crop.face, self.model.input_size)
        ident = self.model.identify(aligned)
        self.crop_seconds.append(time.perf_counter() - t0)
        return ident.name, float(ident.confidence), aligned, ident.embedding, crop.quality


@dataclass(eq=False)
class Person:
    """Someone present: a known name, or one unknown visitor."""

    key: str
    name: str | None  # None for an unknown visitor
    confidence: float
    last_seen: float  # source time
    last_box: tuple[int, int, int, int]
    last_track: int
    visit: int
    embedding: np.ndarray | None = None
    tracks: set[int] = field(default_factory=set)


def _event(kind: str, p: Person, track: int, box: tuple, frame: Frame) -> dict[str, Any]:
    """The design's event JSON."""
    return {
        "type": kind,
        "name": p.name,
        "confidence": round(float(p.confidence), 4),
        "track": int(track),
        "visit": int(p.visit),
        "box": [int(v) for v in box],
        "frame": int(frame.index),
        "source_time": round(float(frame.source_time), 3),
        "time": round(time.time(), 3),
    }


@dataclass
class Emitted:
    """An event and what the loop needs besides: the track that caused it and its best crop."""

    event: dict[str, Any]
    track: Track | None = None
    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None
    crops: list[tuple[np.ndarray, np.ndarray | None, float]] = field(default_factory=list)


class Presence:
    """Person-level presence from track decisions: one event per visit, `left` after away_s."""

    def __init__(self, cfg: DecideConfig, first_visit: int = 1) -> None:
        self.cfg = cfg
        self.people: dict[str, Person] = {}
        self._visits = itertools.count(first_visit)  # after the ids the unknown store holds

    def update(self, frame: Frame, tracks: list[Track], ended: list[Track]) -> list[Emitted]:
        """Fold this frame's live and ended tracks into presence; returns the events."""
        out: list[Emitted] = []
        for t in ended:
            p = self.people.get(t.state.get("person", ""))
            if p is not None:
                p.tracks.discard(t.id)
        live = {t.id for t in tracks}
        seen = {t.id for t in tracks if t.seen_now}
        for p in self.people.values():
            p.tracks &= live
        for t in tracks:
            decision: Decision | None = t.state.get("decision")
            if decision is None:
                continue
            p = self.people.get(t.state.get("person", ""))
            if p is None or p.name != (None if decision.name == UNKNOWN else decision.name):
                p = self._assign(t, decision, frame, out, seen, self._retire(p, t, frame, out))
            if t.seen_now:
                p.last_seen = max(p.last_seen, t.last_source_time)
                p.last_box, p.last_track = t.face.box, t.id
        for key, p in list(self.people.items()):
            if not p.tracks and frame.source_time - p.last_seen > self.cfg.away_s:
                out.append(Emitted(_event("left", p, p.last_track, p.last_box, frame)))
                del self.people[key]
        return out

    def _retire(self, p: Person | None, t: Track, frame: Frame, out: list[Emitted]) -> int | None:
        """A re-check moved `t` away from `p`: if `t` was all of `p`, `p` leaves now and the
        visit goes on under the new identity; returns that visit id."""
        if p is None:
            return None
        p.tracks.discard(t.id)
        if p.tracks:
            return None
        out.append(Emitted(_event("left", p, t.id, t.face.box, frame)))
        del self.people[p.key]
        return p.visit

    def _assign(
        self,
        t: Track,
        d: Decision,
        frame: Frame,
        out: list[Emitted],
        seen: set[int],
        visit: int | None = None,
    ) -> Person:
        """Attach `t` to the person it shows; a new person emits recognized/unknown and gets
        `visit` (a new visit id when None)."""
        box = t.face.box  # the latest detection (t.box may be a prediction)
        if d.name != UNKNOWN:
            p = self.people.get(d.name)
            if p is None:
                visit = visit or next(self._visits)
                p = Person(d.name, d.name, d.confidence, t.last_source_time, box, t.id, visit)
                self.people[d.name] = p
                out.append(
                    Emitted(_event("recognized", p, t.id, box, frame), t, d.crop, d.embedding)
                )
        else:
            p = self._refound_unknown(t, d, seen)
            if p is None:
                visit = visit or next(self._visits)
                key = f"{UNKNOWN}-{visit}"
                p = Person(
                    key, None, d.confidence, t.last_source_time, box, t.id, visit, d.embedding
                )
                self.people[key] = p
                out.append(
                    Emitted(_event(UNKNOWN, p, t.id, box, frame), t, d.crop, d.embedding, d.crops)
                )
        p.tracks.add(t.id)
        t.state["person"] = p.key
        return p

    def _refound_unknown(self, t: Track, d: Decision, seen: set[int]) -> Person | None:
        """The present unknown visitor this track shows, if any: the same face by embedding;
        or a visitor out of view for under REFIND_S whose last box was where `t` is (a lost
        track found again); or (without embeddings) a visitor none of whose tracks is in view."""
        for p in self.people.values():
            if p.name is not None:
                continue
            if (
                not (p.tracks & seen)
                and t.last_source_time - p.last_seen <= REFIND_S
                and near(p.last_box, t.face.box) < REFIND_NEAR
            ):
                return p
            if d.embedding is not None and p.embedding is not None:
                if (
                    cosine_distance(np.ravel(d.embedding), np.ravel(p.embedding))
                    <= SAME_UNKNOWN_DISTANCE
                ):
                    return p
            elif not (p.tracks & seen):
                return p
        return None

    def leave_all(self, frame: Frame) -> list[Emitted]:
        """`left` for everyone still present (shutdown or end of source)."""
        out = [
            Emitted(_event("left", p, p.last_track, p.last_box, frame))
            for p in self.people.values()
        ]
        self.people.clear()
        return out

    @property
    def present(self) -> list[str]:
        """Keys of the people present now."""
        return list(self.people)
