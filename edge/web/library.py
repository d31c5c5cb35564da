"""The face library as the pages see it: people's photos (enroll.dataset), unknown visitors'
crops, and the changes the pages ask for, made by the library owner (edge/library), never in
the capture thread.

A URL never becomes a path: a requested file must be one of the names listed in its folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.images import IMAGE_SUFFIXES, MAX_PIXELS, image_size
from edge.library import FaceLibrary
from edge.names import UNKNOWN_DIR, check_name
from edge.recognize import labels_path

log = logging.getLogger(__name__)

UPLOAD_MAX_PIXELS = 40_000_000  # a 12 MP phone photo passes; a decompression bomb does not
SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]+")


def _listed(folder: Path, name: str, suffixes: set[str] | None = None) -> Path:
    """`folder/name` if `name` is a regular file listed in `folder` (no links, no '..')."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        names = set()
    if name not in names or (suffixes and Path(name).suffix.lower() not in suffixes):
        raise FileNotFoundError(name)
    path = folder / name
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise FileNotFoundError(name)
    return path


def safe_upload_name(name: str | None, suffix: str) -> str:
    """A plain file name for an upload: its base name's safe characters and the image's suffix."""
    stem = Path((name or "").replace("\\", "/")).name
    stem = SAFE_FILE.sub("_", Path(stem).stem).strip("._")[:60] or "upload"
    return f"{stem}{suffix}"


def check_upload(data: bytes) -> str:
    """The suffix for an uploaded image's bytes; UserError when it is not a sane image."""
    size = image_size(data[: 1 << 16])
    if size is None:
        raise UserError("not a JPEG, PNG, WebP or BMP image")
    if size[0] * size[1] > min(UPLOAD_MAX_PIXELS, MAX_PIXELS):
        raise UserError(
            f"{size[0]}x{size[1]} pixels is more than {UPLOAD_MAX_PIXELS // 1_000_000} million"
        )
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError("not a readable image (corrupt or unsupported format)")
    head = data[:4]
    if head.startswith(b"\x89PN"):
        return ".png"
    if head.startswith(b"RIFF"):
        return ".webp"
    if head.startswith(b"BM"):
        return ".bmp"
    return ".jpg"


class Library:
    """People, photos and visitors, and the changes to them (serialized by one lock)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._owner: tuple[tuple, FaceLibrary] | None = None

    @property
    def dataset(self) -> Path:
        return Path(self.cfg.enroll.dataset)

    @property
    def unknown_dir(self) -> Path:
        return Path(self.cfg.unknown_faces.dir)

    # --- reading ---------------------------------------------------------------------------

    def model_labels(self) -> list[str]:
        """The people in the face model now ([] without one)."""
        model = self.cfg.recognize.model
        try:
            return list(json.loads(labels_path(model).read_text())["labels"]) if model else []
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def photos(self, name: str) -> list[str]:
        """The image files in dataset/<name>/, sorted."""
        folder = self.dataset / name
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return []
        return [
            e.name
            for e in entries
            if e.is_file(follow_symlinks=False) and Path(e.name).suffix.lower() in IMAGE_SUFFIXES
        ]

    def people(self) -> list[dict[str, Any]]:
        """Everyone in the model or with a dataset folder: name, in_model, photos."""
        labels = self.model_labels()
        names = set(labels)
        if self.dataset.is_dir():
            names |= {
                e.name
                for e in os.scandir(self.dataset)
                if e.is_dir(follow_symlinks=False)
                and not e.name.startswith(".")
                and e.name != UNKNOWN_DIR
            }
        return [
            {"name": n, "in_model": n in labels, "photos": self.photos(n)}
            for n in sorted(names, key=str.casefold)
        ]

    def photo_path(self, name: str, file: str) -> Path:
        """A listed photo of a listed person; FileNotFoundError otherwise."""
        if name not in {p["name"] for p in self.people()}:
            raise FileNotFoundError(name)
        return _listed(self.dataset / name, file, IMAGE_SUFFIXES)

    def visitors(self) -> list[dict[str, Any]]:
        """Saved unknown visitors, newest first: id, first and last time, crops, and the other
        visitors who look like the same stranger."""
        from edge.decide import SAME_UNKNOWN_DISTANCE
        from edge.unknowns import visitors

        found = visitors(self.unknown_dir)
        means = {}
        for visit, caps in found.items():
            embs = [self._embedding(c) for c in caps]
            embs = [e for e in embs if e is not None]
            if embs:
                v = np.mean(embs, axis=0)
                means[visit] = v / (np.linalg.norm(v) or 1.0)
        out = []
        for visit in sorted(found, reverse=True):
            caps = found[visit]
            same = [
                other
                for other in sorted(means)
                if other != visit
                and visit in means
                and float(1.0 - means[visit] @ means[other]) <= SAME_UNKNOWN_DISTANCE
            ]
            out.append(
                {
                    "id": visit,
                    "first": min(c["time"] for c in caps),
                    "last": max(c["time"] for c in caps),
                    "crops": [c["image"] for c in caps],
                    "same_as": same,
                }
            )
        return out

    def _embedding(self, capture: dict) -> np.ndarray | None:
        name = capture.get("embedding")
        if not name:
            return None
        try:
            emb = np.load(_listed(self.unknown_dir, name, {".npy"})).ravel().astype(np.float32)
        except (OSError, ValueError):
            return None
        return emb

    def crop_path(self, visit: int, image: str) -> Path:
        """One listed crop of a saved visitor; FileNotFoundError otherwise."""
        from edge.unknowns import visitors

        caps = visitors(self.unknown_dir).get(visit, [])
        if image not in {c["image"] for c in caps}:
            raise FileNotFoundError(image)
        return _listed(self.unknown_dir, image, {".jpg"})

    # --- changing: every write goes through the library owner (edge/library) ---------------

    @property
    def owner(self) -> FaceLibrary:
        """The face library's owner for the current config (rebuilt after a reload)."""
        key = (self.cfg.recognize.model, self.cfg.enroll.dataset, self.cfg.unknown_faces.dir)
        if self._owner is None or self._owner[0] != key:
            self._owner = (key, FaceLibrary(self.cfg))
        return self._owner[1]

    def name_visitor(self, visit: int, name: str | None, force: bool = False) -> dict[str, Any]:
        """Name a visitor (an existing or a new person), or ignore them (name None)."""
        return self.owner.name_visitor(visit, name, force=force)

    def delete_visitor(self, visit: int) -> dict[str, Any]:
        """Remove a visitor's saved crops without teaching the model anything."""
        return self.owner.delete_visitor(visit)

    def add_photo(
        self, name: str, filename: str | None, data: bytes, force: bool = False
    ) -> dict[str, Any]:
        """Enroll an uploaded photo of `name` (a known or a new person); kept in dataset/<name>/."""
        name = check_name(name)
        upload = safe_upload_name(filename, check_upload(data))
        with tempfile.TemporaryDirectory(prefix="edge-upload-") as tmp:
            path = Path(tmp) / upload
            path.write_bytes(data)
            result = self.owner.enroll(name, [path], force=force)
        return result | {"file": result["files"][0]}

    def remove_photo(self, name: str, file: str) -> dict[str, Any]:
        """Move a photo of dataset/<name>/ to the trash and its rows out of the model (refit)."""
        self.photo_path(name, file)  # a listed photo of a listed person, or FileNotFoundError
        return self.owner.remove_photo(name, file)

    def rename(self, old: str, new: str, merge: bool = False) -> dict[str, Any]:
        """Rename a person in the model and the dataset folder."""
        return self.owner.rename(old, new, merge=merge)

    def forget(self, name: str) -> dict[str, Any]:
        """Remove a person from the model; their photos go to the trash."""
        return self.owner.forget(name)
