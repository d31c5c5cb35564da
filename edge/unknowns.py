"""Keep the best crop of each unknown visitor for later clustering and labelling.

Each capture is three private files sharing one stem: a JPEG, its embedding (.npy) and a
small JSON. The folder is capped by count and size; the oldest captures go first.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Config, UnknownFacesConfig
from edge.decide import UNKNOWN
from edge.private import write_private
from edge.publish import Output
from edge.vectors import cosine_distance

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".npy", ".json")
DIVERSE_DISTANCE = 0.02  # cosine distance: crops of one visit this far apart are kept first
SAME_PICTURE_DISTANCE = 1e-3  # closer than this: the same picture, never kept twice


class UnknownStore:
    """Saves unknown (and optionally known) face crops under a capped private folder."""

    def __init__(self, cfg: UnknownFacesConfig) -> None:
        self.cfg = cfg
        self.dir = Path(cfg.dir)
        self.saved = 0
        self.failed = 0
        self._failing = False

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    def save(
        self,
        crop_bgr: np.ndarray,
        embedding: np.ndarray | None,
        *,
        track: int,
        name: str,
        confidence: float,
        visit: int | None = None,
        when: float | None = None,
    ) -> Path | None:
        """Store one crop; returns the JPEG path, or None when it was not stored (logged once)."""
        if name != "unknown" and not self.cfg.save_known:
            return None
        when = time.time() if when is None else when
        stamp = (
            time.strftime("%Y%m%d-%H%M%S", time.localtime(when)) + f"-{int(when * 1000) % 1000:03d}"
        )
        stem = f"{stamp}-t{track}" if visit is None else f"{stamp}-v{visit}-t{track}"
        ok, jpeg = cv2.imencode(".jpg", crop_bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        meta: dict[str, Any] = {
            "time": when,
            "track": track,
            "visit": visit,
            "name": name,
            "confidence": round(float(confidence), 4),
            "image": f"{stem}.jpg",
            "embedding": f"{stem}.npy" if embedding is not None else None,
        }
        paths = [self.dir / f"{stem}{s}" for s in SUFFIXES]
        try:
            self._ensure_dir()
            self._make_room(len(jpeg))
            write_private(paths[0], jpeg.tobytes())
            if embedding is not None:
                buf = np.asarray(embedding, dtype=np.float32)
                write_private(paths[1], _npy_bytes(buf))
            write_private(paths[2], json.dumps(meta).encode())
        except OSError as exc:
            for p in paths:
                p.unlink(missing_ok=True)
            self.failed += 1
            if not self._failing:
                reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
                log.error(
                    "cannot save unknown face in %s: %s (will keep trying, logged once)",
                    self.dir,
                    reason,
                )
                self._failing = True
            return None
        if self._failing:
            log.info("saving unknown faces in %s works again", self.dir)
            self._failing = False
        self.saved += 1
        return paths[0]

    def next_visit(self) -> int:
        """A visit id no stored capture has: so a restart never merges two visitors."""
        return max(visitors(self.dir), default=0) + 1

    def save_visit(
        self,
        crops: list[tuple[np.ndarray, np.ndarray | None, float]],
        *,
        visit: int,
        track: int,
        name: str,
        confidence: float,
    ) -> list[Path]:
        """Store up to `crops_per_visit` crops of one visit, the best first: those at least
        DIVERSE_DISTANCE from the ones kept (another pose, size or light), then, while there
        is room, the next best that are not the same picture (more crops name a visitor seen
        once more surely)."""
        chosen: list[tuple[np.ndarray, np.ndarray | None]] = []
        ranked = sorted(crops, key=lambda c: -c[2])
        for apart in (DIVERSE_DISTANCE, SAME_PICTURE_DISTANCE):
            for crop, emb, _quality in ranked:
                if len(chosen) >= self.cfg.crops_per_visit:
                    break
                if any(c is crop for c, _ in chosen) or (
                    emb is not None
                    and any(e is not None and cosine_distance(emb, e) < apart for _, e in chosen)
                ):
                    continue
                chosen.append((crop, emb))
        saved = []
        for i, (crop, emb) in enumerate(chosen):
            path = self.save(
                crop, emb, track=track, name=name, confidence=confidence, visit=visit,
                when=time.time() + i * 0.001,
            )  # fmt: skip
            if path is not None:
                saved.append(path)
        return saved

    def _captures(self) -> list[tuple[str, int]]:
        """(stem, total bytes) of stored captures, oldest first."""
        sizes: dict[str, int] = {}
        for entry in os.scandir(self.dir):
            stem, dot, suffix = entry.name.rpartition(".")
            if dot and f".{suffix}" in SUFFIXES and entry.is_file():
                sizes[stem] = sizes.get(stem, 0) + entry.stat().st_size
        return sorted(sizes.items())

    def _make_room(self, incoming: int) -> None:
        """Remove the oldest captures until one more fits both caps."""
        captures = self._captures()
        total = sum(size for _, size in captures)
        limit = self.cfg.max_mb * 1024 * 1024
        while captures and (len(captures) + 1 > self.cfg.max_files or total + incoming > limit):
            stem, size = captures.pop(0)
            for suffix in SUFFIXES:
                (self.dir / f"{stem}{suffix}").unlink(missing_ok=True)
            total -= size


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def load_capture(json_path: Path) -> tuple[dict, np.ndarray | None]:
    """Read one capture's metadata and embedding (None if it has none)."""
    meta = json.loads(Path(json_path).read_text())
    emb = meta.get("embedding")
    return meta, (np.load(Path(json_path).parent / emb) if emb else None)


def visitors(directory: Path) -> dict[int, list[dict]]:
    """The stored unknown visits: visit id -> its captures' metadata (with "path"), oldest first."""
    found: dict[int, list[dict]] = {}
    if not Path(directory).is_dir():
        return found
    for path in sorted(Path(directory).glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (
            isinstance(meta, dict)
            and isinstance(meta.get("visit"), int)
            and meta.get("name") == "unknown"
        ):
            found.setdefault(meta["visit"], []).append({**meta, "path": str(path)})
    return found


class UnknownOutput(Output):
    """The loop's output that keeps unknown visitors' crops (and recognized faces' best crop)
    while unknown_faces.enabled; a reloaded config with other settings gets a new store."""

    def __init__(self, cfg: Config) -> None:
        self.settings = cfg.unknown_faces
        self.store = UnknownStore(self.settings) if self.settings.enabled else None

    def publish(self, emitted: Any, snapshot_jpeg: bytes | None, model: Any) -> None:
        ev = emitted.event
        if self.store is None or emitted.crop is None:
            return
        name = UNKNOWN if ev["type"] == UNKNOWN else ev["name"]
        keep = dict(track=ev["track"], visit=ev["visit"], name=name, confidence=ev["confidence"])  # fmt: skip
        if name == UNKNOWN and emitted.crops:
            self.store.save_visit(emitted.crops, **keep)
        else:
            self.store.save(emitted.crop, emitted.embedding, **keep)

    def reload(self, cfg: Config) -> None:
        if cfg.unknown_faces != self.settings:
            self.settings = cfg.unknown_faces
            self.store = UnknownStore(self.settings) if self.settings.enabled else None
