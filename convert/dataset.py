"""Crawl dataset/<Name>/**/*.jpg, detect the largest face, align and crop it, cache by file hash.

`_unknown/` holds people who must never be named: their crops train rejection, not a class.
Every file that is not used is reported with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convert.hashing import file_hash
from convert.progress import progress
from edge.config import DetectConfig
from edge.errors import UserError

log = logging.getLogger("convert.dataset")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
UNKNOWN_DIR = "_unknown"
AMBIGUOUS_RATIO = 0.8  # a second face this large (area vs the largest) makes a photo ambiguous
CROP_VERSION = 3  # bump when the crop geometry changes: invalidates cached crops


@dataclass
class Sample:
    """One usable photo: its aligned crop (RGB uint8) and the person (None for _unknown)."""

    path: Path
    label: str | None
    key: str  # file hash + crop settings; names the cache entry
    crop_rgb: np.ndarray


@dataclass
class Dataset:
    root: Path
    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    found: list[tuple[Path, str | None]] = field(default_factory=list)  # every photo crawled
    left_out: dict[str, str] = field(default_factory=dict)  # person -> why not in the model

    @property
    def labels(self) -> list[str]:
        """The people, sorted (the model's class order)."""
        return sorted({s.label for s in self.samples if s.label is not None})

    def known(self) -> list[Sample]:
        return [s for s in self.samples if s.label is not None]

    def unknown(self) -> list[Sample]:
        return [s for s in self.samples if s.label is None]

    def digest(self) -> str:
        """Hash of the (label, file hash) pairs used: identifies the training data."""
        h = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: (s.label or "", s.key)):
            h.update(f"{s.label}\0{s.key}\n".encode())
        return h.hexdigest()[:16]


def crawl(root: Path) -> tuple[list[tuple[Path, str | None]], list[tuple[Path, str]]]:
    """(photo, person) pairs under root (person = first folder level) and skipped files."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    found: list[tuple[Path, str | None]] = []
    skipped: list[tuple[Path, str]] = []
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in sorted(files):
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((path, "not a jpg/jpeg/png/webp image"))
            elif not rel.parts:
                skipped.append((path, "not inside a person's folder (dataset/<Name>/...)"))
            else:
                person = rel.parts[0]
                found.append((path, None if person == UNKNOWN_DIR else person))
    return found, skipped


class CropCache:
    """Crops (and per-backbone embeddings) stored as .npz files named by key."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def _path(self, kind: str, key: str) -> Path:
        return self.dir / kind / key[:2] / f"{key}.npz"

    def get(self, kind: str, key: str) -> dict | None:
        path = self._path(kind, key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            log.warning("%s: unreadable cache entry, recomputing", path)
            return None

    def put(self, kind: str, key: str, **arrays: np.ndarray) -> None:
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


def default_cache_dir(root: Path) -> Path:
    """DATASET/.cache when the dataset folder is writable, else ~/.cache/edge-faces/convert."""
    root = Path(root)
    if os.access(root, os.W_OK):
        return root / ".cache"
    return Path.home() / ".cache" / "edge-faces" / "convert"


def load_dataset(
    root: Path, cfg: DetectConfig, size: int, cache: CropCache, min_photos: int = 2
) -> Dataset:
    """Detect, align and crop every photo (cached by file hash); drop people with too few photos."""
    from edge.align import Aligner
    from edge.detect import create_photo_detector
    from edge.images import read_image

    found, skipped = crawl(root)
    ds = Dataset(Path(root), skipped=skipped, found=found)
    settings = json.dumps(
        [
            CROP_VERSION,
            size,
            cfg.method,
            cfg.confirmer,
            cfg.confidence,
            cfg.margin,
            cfg.confirm_size,
            repr(cfg.haar),
            repr(cfg.photo),
        ],
    )
    detector = aligner = None
    hits = 0
    for path, label in progress(found, desc="crop", unit="photo"):
        try:
            digest = file_hash(path)
        except OSError as exc:
            ds.skipped.append((path, f"unreadable ({exc.strerror})"))
            continue
        key = hashlib.sha256(f"{digest}{settings}".encode()).hexdigest()[:32]
        entry = cache.get("crops", key)
        if entry is None:
            if detector is None:
                detector, aligner = create_photo_detector(cfg), Aligner(cfg)
            entry = _crop_photo(path, detector, aligner, size, read_image)
            cache.put("crops", key, **entry)
        else:
            hits += 1
        reason = str(entry["reason"]) if "reason" in entry else ""
        if reason:
            ds.skipped.append((path, reason))
            continue
        if "warning" in entry:
            log.warning("%s: %s", path, entry["warning"])
        ds.samples.append(Sample(path, label, key, entry["crop"]))
    log.info(
        "%d photos: %d cropped from cache, %d detected now", len(found), hits, len(found) - hits
    )
    _drop_small_classes(ds, min_photos)
    for path, reason in ds.skipped:
        log.warning("skipped %s: %s", path, reason)
    return ds


def _crop_photo(path: Path, detector, aligner, size: int, read_image) -> dict:
    """{"crop": RGB uint8} for the largest face, or {"reason": why the photo is unusable}."""
    import cv2

    try:
        image = read_image(path)
    except UserError as exc:
        return {"reason": np.array(str(exc).split(": ", 1)[-1])}
    faces = detector.detect(image)
    if not faces:
        return {"reason": np.array("no face found")}
    faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
    out = {}
    if len(faces) > 1:
        a0 = faces[0].box[2] * faces[0].box[3]
        a1 = faces[1].box[2] * faces[1].box[3]
        if a1 >= AMBIGUOUS_RATIO * a0:
            return {"reason": np.array(f"ambiguous: {len(faces)} faces of similar size")}
        out["warning"] = np.array(f"{len(faces)} faces; using the largest")
    crop = aligner.crop(image, faces[0], size)
    out["crop"] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return out


def _drop_small_classes(ds: Dataset, min_photos: int) -> None:
    counts: dict[str, int] = {}
    for s in ds.known():
        counts[s.label] = counts.get(s.label, 0) + 1
    small = {name for name, n in counts.items() if n < min_photos}
    for name in sorted(small):
        ds.left_out[name] = f"only {counts[name]} usable photo(s), need {min_photos}"
        log.warning("%s: %s: person left out", ds.root / name, ds.left_out[name])
    if small:
        ds.samples = [s for s in ds.samples if s.label not in small]


def person_of(root: Path, path: Path) -> str | None:
    """The person folder (first level under `root`) a file is in; None at the top level."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def per_person(ds: Dataset) -> list[dict]:
    """One row per person folder (and _unknown): photos given, faces used, skipped files."""
    rows: dict[str, dict] = {}

    def row(name: str) -> dict:
        return rows.setdefault(name, {"person": name, "given": 0, "used": 0, "skipped": []})

    for _path, label in ds.found:
        row(label or UNKNOWN_DIR)["given"] += 1
    for s in ds.samples:
        row(s.label or UNKNOWN_DIR)["used"] += 1
    for path, reason in ds.skipped:
        name = person_of(ds.root, path)
        if name is None:
            continue
        r = row(name)
        r["skipped"].append({"file": str(path.relative_to(ds.root)), "reason": reason})
        if path.suffix.lower() not in IMAGE_SUFFIXES:  # never crawled as a photo
            r["given"] += 1
    for name, why in ds.left_out.items():
        row(name)["left_out"] = why
    return sorted(rows.values(), key=lambda r: (r["person"] == UNKNOWN_DIR, r["person"].lower()))
