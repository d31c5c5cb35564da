"""Crawl dataset/<Name>/**/*.jpg, detect the largest face, align and crop it, cache by file hash.

`_unknown/` holds people who must never be named: their crops train rejection, not a class.
Every file that is not used is reported with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.config import DetectConfig
from edge.errors import UserError
from edge.hashing import file_hash
from edge.images import file_problem
from edge.names import RESERVED_NAMES, UNKNOWN_DIR
from edge.private import private_dir, replace_private
from edge.progress import progress

log = logging.getLogger("convert.dataset")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CROP_VERSION = 4  # bump when the crop geometry changes: invalidates cached crops


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


def _folder_problem(name: str) -> str | None:
    """Why a person folder's name cannot be a label, or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the folder name is not valid UTF-8: rename it (e.g. convmv -f latin1 -t utf8)"
    if name.strip() != name:
        return f"the name {name!r} starts or ends with a space: rename the folder"
    if not name.isprintable():
        return f"the name {name!r} holds a control or invisible character: rename the folder"
    if name.lower() in RESERVED_NAMES:
        return f"{name!r} is reserved for strangers: rename the folder (strangers go in {UNKNOWN_DIR}/)"
    return None


def _walk(root: Path, skipped: list[tuple[Path, str]]):
    """os.walk(root) following folder links only while they stay inside root and do not
    revisit a folder (`up -> ..` would file every person under one name)."""
    top = os.path.realpath(root)
    seen = {top}
    for dirpath, dirs, files in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirs):
            path = Path(dirpath) / d
            if d.startswith("."):
                if dirpath == str(root) and d not in (".cache", ".trash"):
                    skipped.append((path, "hidden folder (its name starts with '.'): left out"))
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([top, real]) != top:
                skipped.append((path, f"link to a folder outside the dataset ({real}): left out"))
            elif real in seen:
                skipped.append(
                    (path, f"link to a folder already in the dataset ({real}): left out")
                )
            else:
                seen.add(real)
                keep.append(d)
        dirs[:] = keep
        yield dirpath, files


def _case_clashes(root: Path, skipped: list[tuple[Path, str]]) -> set[str]:
    """Person folders whose names differ only in case or Unicode form (alice, Alice): all are
    left out."""
    try:
        names = sorted(e.name for e in os.scandir(root) if e.is_dir() and e.name != UNKNOWN_DIR)
    except OSError:
        return set()
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(unicodedata.normalize("NFKC", name).casefold(), []).append(name)
    clash = {n for group in groups.values() if len(group) > 1 for n in group}
    for group in groups.values():
        if len(group) > 1:
            for name in group:
                others = ", ".join(repr(o) for o in group if o != name)
                skipped.append(
                    (
                        root / name,
                        f"{name!r} and {others} differ only in case or Unicode form: merge them into one folder",
                    )
                )
    return clash


def crawl(root: Path) -> tuple[list[tuple[Path, str | None]], list[tuple[Path, str]]]:
    """(photo, person) pairs under root (person = first folder level) and skipped files."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    found: list[tuple[Path, str | None]] = []
    skipped: list[tuple[Path, str]] = []
    clash = _case_clashes(root, skipped)
    bad_folders: set[str] = set()
    for dirpath, files in _walk(root, skipped):
        rel = Path(dirpath).relative_to(root)
        person = rel.parts[0] if rel.parts else None
        if person is not None and person != UNKNOWN_DIR:
            if person in clash:
                continue
            problem = _folder_problem(person)
            if problem:
                if person not in bad_folders:
                    bad_folders.add(person)
                    skipped.append((root / person, problem))
                continue
        for name in sorted(files):
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((path, "not a jpg/jpeg/png/webp image"))
            elif problem := file_problem(path):
                skipped.append((path, problem))
            elif person is None:
                skipped.append((path, "not inside a person's folder (dataset/<Name>/...)"))
            else:
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
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            log.warning("%s: unreadable cache entry, recomputing", path)
            return None

    def put(self, kind: str, key: str, **arrays: np.ndarray) -> None:
        """Store arrays under key, in 0600 files and 0700 folders (they are people's faces)."""
        path = self._path(kind, key)
        for folder in (self.dir, path.parent.parent, path.parent):
            private_dir(folder)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        replace_private(path, buf.getvalue())


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
            entry = _crop_photo(path, cfg, size, read_image)
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


def _crop_photo(path: Path, cfg: DetectConfig, size: int, read_image) -> dict:
    """{"crop": RGB uint8} for the largest face, or {"reason": why the photo is unusable}."""
    import cv2

    from edge.stills import main_crop

    try:
        image = read_image(path)
    except UserError as exc:
        return {"reason": np.array(str(exc).split(": ", 1)[-1])}
    crop, note = main_crop(image, cfg, size)
    if crop is None:
        return {"reason": np.array(note)}
    out = {"warning": np.array(note)} if note else {}
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
    crawled = {path for path, _ in ds.found}
    for path, reason in ds.skipped:
        name = person_of(ds.root, path)
        if name is None:
            continue
        r = row(name)
        r["skipped"].append({"file": str(path.relative_to(ds.root)), "reason": reason})
        if path not in crawled:  # left out by the crawl itself (not a photo, a FIFO, ...)
            r["given"] += 1
    for name, why in ds.left_out.items():
        row(name)["left_out"] = why
    return sorted(rows.values(), key=lambda r: (r["person"] == UNKNOWN_DIR, r["person"].lower()))
