"""The face library as the pages see it: people's photos (enroll.dataset), unknown visitors'
crops, and the changes the pages ask for, made by the library owner (edge/library), never in
the capture thread.

A URL never becomes a path: a requested file must be one of the names listed in its folder.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.images import IMAGE_SUFFIXES
from edge.library import FaceLibrary
from edge.names import UNKNOWN_DIR, check_name
from edge.recognize import labels_path
from edge.vectors import cosine_distance, unit
from edge.web.uploads import prepare_upload, safe_upload_name

log = logging.getLogger(__name__)


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


def _strangers(same_as: dict[int, list[int]]) -> dict[int, list[int]]:
    """Visit -> every visit of the same stranger (linked by "same as", newest first)."""
    groups: dict[int, list[int]] = {}
    for start in sorted(same_as, reverse=True):
        if start in groups:
            continue
        seen, todo = {start}, [start]
        while todo:
            for other in same_as.get(todo.pop(), []):
                if other in same_as and other not in seen:
                    seen.add(other)
                    todo.append(other)
        group = sorted(seen, reverse=True)
        for visit in group:
            groups[visit] = group
    return groups


class Library:
    """People, photos and visitors as the pages see them, and the changes to them (made by
    the library owner, one at a time)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._owner: tuple[tuple, FaceLibrary] | None = None
        self._keys: set[str] = set()
        self._rows: dict[str, int] = {}
        self._keys_stamp: tuple | None = None
        self._hashes: dict[tuple, str] = {}

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

    def model_keys(self) -> set[str]:
        """Content hashes of the photos and crops the model learned from (cached per store file)."""
        from edge.facestore import FaceStore

        model = self.cfg.recognize.model
        try:
            meta = json.loads(labels_path(model).read_text()) if model else {}
            path = Path(model).with_name(str(meta["store"]))
            stamp = (str(path), path.stat().st_mtime_ns)
        except (OSError, ValueError, KeyError, TypeError):
            return set()
        if self._keys_stamp != stamp:
            try:
                store = FaceStore.load(path)
                self._keys = set(store.keys)
                self._rows = {n: int((store.y == i).sum()) for i, n in enumerate(store.labels)}
            except (OSError, ValueError, KeyError):
                self._keys, self._rows = set(), {}
            self._keys_stamp = stamp
        return self._keys

    def model_rows(self) -> dict[str, int]:
        """How many faces (photos and named crops) the model learned each person from."""
        self.model_keys()
        return self._rows

    def _hash(self, path: Path) -> str | None:
        """A photo's content hash, cached by size and modification time."""
        from edge.hashing import file_hash

        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._hashes:
            if len(self._hashes) > 10_000:
                self._hashes.clear()
            self._hashes[key] = file_hash(path)
        return self._hashes[key]

    def unused_photos(self, name: str, photos: list[str]) -> list[str]:
        """The photos of a person in the model that the model did not learn from (no one clear
        face in them, or added while the model could not be changed)."""
        keys = self.model_keys()
        return [f for f in photos if self._hash(self.dataset / name / f) not in keys]

    def people(self) -> list[dict[str, Any]]:
        """Everyone in the model or with a dataset folder: name, in_model, photos, the photos
        the model could not use, and how many faces it learned them from."""
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
        out = []
        rows = self.model_rows()
        for n in sorted(names, key=str.casefold):
            photos = self.photos(n)
            unused = self.unused_photos(n, photos) if n in labels else photos
            out.append({"name": n, "in_model": n in labels, "photos": photos, "unused": unused, "faces_learned": rows.get(n, 0)})  # fmt: skip
        return out

    def stamp(self) -> dict[str, int]:
        """Changes at a glance, for the pages' live updates: folder and model times."""

        def mtime(path: Path) -> int:
            try:
                return path.stat().st_mtime_ns
            except OSError:
                return 0

        model = self.cfg.recognize.model
        people = mtime(self.dataset) + (mtime(labels_path(model)) if model else 0)
        if self.dataset.is_dir():
            people += sum(e.stat().st_mtime_ns for e in os.scandir(self.dataset) if e.is_dir(follow_symlinks=False))  # fmt: skip
        return {"visitors": mtime(self.unknown_dir), "people": people}

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
                means[visit] = unit(np.mean(embs, axis=0))
        out = []
        for visit in sorted(found, reverse=True):
            caps = found[visit]
            same = [
                other
                for other in sorted(means)
                if other != visit
                and visit in means
                and float(cosine_distance(means[visit], means[other])) <= SAME_UNKNOWN_DISTANCE
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
        groups = _strangers({v["id"]: v["same_as"] for v in out})
        for v in out:
            v["group"] = groups[v["id"]]
        return out

    def group_of(self, visit: int) -> list[int]:
        """The visits of the stranger `visit` belongs to (newest first), `visit` itself first."""
        for v in self.visitors():
            if v["id"] == visit:
                return [visit] + [g for g in v["group"] if g != visit]
        return [visit]

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

    def name_visitor(
        self, visit: int, name: str | None, force: bool = False, together: bool = False
    ) -> dict[str, Any]:
        """Name a visitor (an existing or a new person), or ignore them (name None);
        `together`: with every visit of the same stranger, in one change."""
        visits = self.group_of(visit) if together else [visit]
        return self.owner.name_visitors(visits, name, force=force)

    def correct_event(self, crop_jpeg: bytes, event_id: int, name: str | None, force: bool) -> dict:
        """An event's face named wrongly: it joins `name`, or (None) is never to be named."""
        with tempfile.TemporaryDirectory(prefix="edge-correct-") as tmp:
            path = Path(tmp) / f"event-{event_id}.jpg"
            path.write_bytes(crop_jpeg)
            return self.owner.correct(path, name, force=force)

    def delete_visitor(self, visit: int) -> dict[str, Any]:
        """Remove a visitor's saved crops without teaching the model anything."""
        return self.owner.delete_visitor(visit)

    def add_photo(
        self, name: str, filename: str | None, data: bytes, force: bool = False
    ) -> dict[str, Any]:
        """Enroll an uploaded photo of `name` (a known or a new person); kept in dataset/<name>/."""
        name = check_name(name)
        data, suffix = prepare_upload(data)
        upload = safe_upload_name(filename, suffix)
        with tempfile.TemporaryDirectory(prefix="edge-upload-") as tmp:
            path = Path(tmp) / upload
            path.write_bytes(data)
            try:
                result = self.owner.enroll(name, [path], force=force)
            except UserError as exc:  # this one photo's reason, under the name it was sent as
                text = str(exc)
                if f"({upload}: " not in text:
                    raise
                reason = text.split(f"({upload}: ", 1)[1].removesuffix(")")
                raise UserError(f"{filename or upload}: {reason}") from None
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
