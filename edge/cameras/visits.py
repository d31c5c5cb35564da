"""One person, one presence across cameras: each camera's own events (edge.decide.Presence
per camera) become person-level ones with one visit id and the camera they happened at."""

from __future__ import annotations

import itertools
import threading

import numpy as np

from edge.decide import SAME_UNKNOWN_DISTANCE, UNKNOWN, Emitted
from edge.vectors import cosine_distance

KEEP_LOCAL = 10_000  # (camera, its visit) pairs remembered; the oldest are forgotten beyond


class Visits:
    """Folds the cameras' events: a person seen at a second camera while the first still
    holds them (a camera keeps a person decide.away_s after they were last seen) keeps the
    visit id; `left` goes out once no camera sees them."""

    def __init__(self, first_visit: int = 1) -> None:
        self._ids = itertools.count(first_visit)  # after the ids the unknown store holds
        self._local: dict[tuple[str, int], int] = {}  # (camera, its own visit id) -> visit
        self._where: dict[int, set[str]] = {}  # visit going on -> the cameras holding it
        self._names: dict[str, int] = {}  # known person present -> their visit
        self._unknowns: dict[int, np.ndarray | None] = {}  # unknown visit going on -> face
        self._lock = threading.Lock()

    def fold(self, camera: str, emitted: Emitted) -> bool:
        """Give the event its camera and the shared visit id; False when it is no news: a
        `left` from one camera while another still sees the person."""
        ev = emitted.event
        ev["camera"] = camera
        local = (camera, int(ev["visit"]))
        with self._lock:
            if ev["type"] == "left":
                visit = self._local.get(local)
                if visit is None:
                    return True
                ev["visit"] = visit
                where = self._where.get(visit, set())
                where.discard(camera)
                if where:
                    return False
                self._where.pop(visit, None)
                self._unknowns.pop(visit, None)
                if ev["name"] is not None and self._names.get(ev["name"]) == visit:
                    del self._names[ev["name"]]
                return True
            visit = self._visit_of(camera, local, ev["name"] if ev["type"] != UNKNOWN else None,
                                   emitted.embedding)  # fmt: skip
            ev["visit"] = visit
            self._local[local] = visit
            while len(self._local) > KEEP_LOCAL:
                del self._local[next(iter(self._local))]
            self._where.setdefault(visit, set()).add(camera)
            if ev["type"] == UNKNOWN:
                self._unknowns[visit] = emitted.embedding
            else:
                self._names[ev["name"]] = visit
            return True

    def _visit_of(
        self, camera: str, local: tuple[str, int], name: str | None, embedding: np.ndarray | None
    ) -> int:
        """The known person's visit going on; or an unknown visitor another camera holds with
        the same face; or the camera's own visit under a new identity (a re-check turned it into
        someone else) when no camera holds it any more; else a new one."""
        if name is not None and name in self._names:
            return self._names[name]
        if name is None and embedding is not None:
            for visit, face in self._unknowns.items():
                if (
                    face is not None
                    and camera not in self._where.get(visit, ())
                    and cosine_distance(np.ravel(embedding), np.ravel(face))
                    <= SAME_UNKNOWN_DISTANCE
                ):
                    return visit
        if local in self._local and self._local[local] not in self._where:
            return self._local[local]
        return next(self._ids)

    def clear(self) -> None:
        """Nobody is watched (recognition switched off): every visit is over, silently."""
        with self._lock:
            self._where.clear()
            self._names.clear()
            self._unknowns.clear()

    @property
    def present(self) -> dict[int, set[str]]:
        """Visit id -> the cameras that see it now."""
        with self._lock:
            return {v: set(c) for v, c in self._where.items()}
