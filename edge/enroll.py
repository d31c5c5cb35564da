"""Add, forget and rename people on the Pi: numpy only, no TensorFlow, no re-export.

The int8 model stays as it is; its embedding store (edge/facestore.py) gets the new photos'
embeddings (4 augmented crops each, through the int8 model), and the head, centroids and
thresholds are refit from the store (edge/head.py). Photos are kept in the dataset folder
(`enroll.dataset`, dataset/<Name>/) so that a full `convert train` on a PC includes them.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.facestore import FaceStore, save_model_update
from edge.head import N_AUG, augment, calibrate, fit_head, held_out_scores
from edge.names import check_name
from edge.recognize import FaceModel
from edge.slugs import SlugBook, slug_book_path

log = logging.getLogger("edge.enroll")


@dataclass
class Embedded:
    """Photos turned into store rows, and the ones left out with the reason."""

    keys: list[str] = field(default_factory=list)
    emb: list[np.ndarray] = field(default_factory=list)  # each (N_AUG, D)
    used: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


class Enroller:
    """The model, its store and the photo detector; changes are written by `save`."""

    def __init__(self, cfg: Config, model_path: str | None = None) -> None:
        self.cfg = cfg
        self.model = FaceModel.load(model_path or cfg.recognize.model, cfg.recognize)
        if self.model.store_path is None:
            raise UserError(
                f"{self.model.path.with_suffix('.json')}: this model has no embedding store; "
                "retrain it once with `python -m convert train` to enroll on the device"
            )
        self.store = FaceStore.load(self.model.store_path)
        if self.store.labels != self.model.labels:
            raise UserError(
                f"{self.model.store_path}: its people differ from {self.model.path.with_suffix('.json')}"
            )
        self.dataset = Path(cfg.enroll.dataset)
        self._detector = self._aligner = None

    def embed(self, paths: list[Path], aligned: bool = False) -> Embedded:
        """The main face of each photo through the int8 model, 4 augmented crops each;
        `aligned`: the files are already aligned face crops (an unknown visitor's captures)."""
        from edge.hashing import file_hash
        from edge.images import read_image

        out = Embedded()
        seen = set(self.store.keys)
        for path in paths:
            try:
                key = file_hash(path)
                image = read_image(path)
            except (OSError, UserError) as exc:
                out.skipped.append((path, str(exc).split(": ", 1)[-1]))
                continue
            if key in seen:
                out.skipped.append((path, "already enrolled"))
                continue
            crop, why = (image, "") if aligned else self._main_crop(image)
            if crop is None:
                out.skipped.append((path, why))
                continue
            self._add_crop(out, path, key, crop)
            seen.add(key)
        return out

    def _main_crop(self, image: np.ndarray) -> tuple[np.ndarray | None, str]:
        """The aligned crop of the photo's main face, or (None, why not)."""
        from edge.stills import main_crop

        return main_crop(image, self.cfg.detect, self.model.input_size)

    def _add_crop(self, out: Embedded, path: Path, key: str, crop: np.ndarray) -> None:
        out.emb.append(np.stack([self.model.infer(c)[0] for c in augment(crop, key)]))
        out.keys.append(key)
        out.used.append(path)

    def add(self, label: str | None, rows: Embedded) -> None:
        """Append the rows to the store under `label` (a new person is a new class; None = stranger)."""
        if label is not None and label not in self.store.labels:
            self.store.labels.append(label)
        cls = -1 if label is None else self.store.labels.index(label)
        self.store.emb = np.concatenate([self.store.emb, np.stack(rows.emb)])
        self.store.y = np.concatenate([self.store.y, np.full(len(rows.emb), cls)])
        self.store.keys += rows.keys

    def remove(self, label: str) -> int:
        """Drop a person's rows and class; the number of photos removed."""
        idx = self.store.labels.index(label)
        keep = self.store.y != idx
        self.store.emb, self.store.keys = (
            self.store.emb[keep],
            [k for k, ok in zip(self.store.keys, keep, strict=True) if ok],
        )
        y = self.store.y[keep]
        self.store.y = np.where(y > idx, y - 1, y)
        del self.store.labels[idx]
        return int(np.sum(~keep))

    def save(self, refit: bool = True) -> dict:
        """Refit head, centroids and thresholds from the store (unless only names changed); write."""
        meta = dict(self.model.meta)
        meta["labels"] = list(self.store.labels)
        result: dict = {"people": len(self.store.labels)}
        if refit:
            n = len(self.store.labels)
            if n < 2:
                raise UserError("the model needs at least 2 people")
            emb, y = self.store.emb, self.store.y
            rules = calibrate(held_out_scores(emb, y, n))
            head = fit_head(emb.reshape(-1, emb.shape[-1]), np.repeat(y, N_AUG), n)
            self.store.weights, self.store.bias = head.weights, head.bias
            meta["head"] = "store"  # FaceModel applies the refit head, not the model's own
            chosen = rules["chosen"]
            meta["thresholds"] = {
                **meta["thresholds"],
                "min_probability": chosen["min_probability"],
                "max_distance": chosen["max_distance"],
            }
            meta["centroids"] = np.round(head.centroids, 6).tolist()
            meta["device"] = {
                "updated": datetime.now(UTC).isoformat(timespec="seconds"),
                "calibration": rules,
            }
            result["calibration"] = chosen
        save_model_update(self.model.path, meta, self.store)
        return result

    def keep_photos(self, name: str, photos: list[Path]) -> Path:
        """Copy the used photos into dataset/<name>/ (never overwriting one already there)."""
        folder = self.dataset / name
        folder.mkdir(parents=True, exist_ok=True)
        for photo in photos:
            target, i = folder / photo.name, 1
            while target.exists():
                target = folder / f"{photo.stem}-{i}{photo.suffix}"
                i += 1
            shutil.copy2(photo, target)
        return folder


def enroll(cfg: Config, name: str, photos: list[Path], model_path: str | None = None) -> dict:
    """Add `photos` of `name` (a new or known person) to the model; the summary."""
    t0 = time.monotonic()
    name = check_name(name)
    enroller = Enroller(cfg, model_path)
    same = [n for n in enroller.store.labels if n.casefold() == name.casefold() and n != name]
    if same:
        raise UserError(
            f"{name}: the model already has {same[0]!r} (names differing only in case are one "
            f"person); use {same[0]!r}"
        )
    rows = enroller.embed(photos)
    for path, reason in rows.skipped:
        log.warning("skipped %s: %s", path, reason)
    if not rows.used:
        raise UserError(f"{name}: none of the {len(photos)} photo(s) has one clear face to enroll")
    enroller.add(name, rows)
    have = enroller.store.counts()[name]
    result = {"name": name, "added": len(rows.used), "skipped": len(rows.skipped)}
    result |= enroller.save()
    folder = enroller.keep_photos(name, rows.used)
    if have < 3:
        log.warning("%s: %d photo(s) enrolled; 3 or more make recognition reliable", name, have)
    log.info(
        "%s: %d photo(s) added (%d in all); photos kept in %s", name, len(rows.used), have, folder
    )
    return {
        **result,
        "photos": have,
        "dataset": str(folder),
        "seconds": round(time.monotonic() - t0, 2),
    }


def visitor_captures(cfg: Config, visit: int) -> list[dict]:
    """The stored captures of one unknown visit; UserError when there are none."""
    from edge.unknowns import visitors

    found = visitors(Path(cfg.unknown_faces.dir))
    if visit not in found:
        listed = ", ".join(str(v) for v in sorted(found)[-10:]) or "none"
        raise UserError(
            f"visitor {visit}: no saved crops in {cfg.unknown_faces.dir} (latest visitors: {listed})"
        )
    return found[visit]


def enroll_visitor(
    cfg: Config, visit: int, name: str | None, model_path: str | None = None
) -> dict:
    """Name an unknown visitor from their saved crops (`name` None: ignore them, i.e. teach the
    model never to name that face); the crops move to dataset/<name>/ or dataset/_unknown/."""
    from edge.names import UNKNOWN_DIR

    t0 = time.monotonic()
    label = check_name(name) if name is not None else None
    captures = visitor_captures(cfg, visit)
    enroller = Enroller(cfg, model_path)
    images = [Path(c["path"]).with_name(c["image"]) for c in captures]
    rows = enroller.embed(images, aligned=True)
    if not rows.used:
        raise UserError(f"visitor {visit}: none of the {len(images)} crop(s) is readable and new")
    enroller.add(label, rows)
    result = {"visitor": visit, "name": label, "added": len(rows.used), **enroller.save()}
    folder = enroller.keep_photos(label or UNKNOWN_DIR, rows.used)
    for c in captures:
        for suffix in (".json", ".jpg", ".npy"):
            Path(c["path"]).with_suffix(suffix).unlink(missing_ok=True)
    what = f"named {label}" if label else "ignored (never to be named)"
    log.info("visitor %d %s: %d crop(s), kept in %s", visit, what, len(rows.used), folder)
    return {**result, "dataset": str(folder), "seconds": round(time.monotonic() - t0, 2)}


def forget(cfg: Config, name: str, model_path: str | None = None) -> dict:
    """Remove a person from the model and their photos from the dataset folder; the summary."""
    enroller = Enroller(cfg, model_path)
    if name not in enroller.store.labels:
        known = ", ".join(enroller.store.labels)
        raise UserError(f"{name}: not in the model (people: {known})")
    if len(enroller.store.labels) <= 2:
        raise UserError(f"{name}: cannot forget, the model needs at least 2 people left")
    removed = enroller.remove(name)
    result = {"name": name, "removed": removed, **enroller.save()}
    folder = enroller.dataset / name
    if folder.is_dir():
        shutil.rmtree(folder)
        result["dataset_removed"] = str(folder)
    return result


def rename(cfg: Config, old: str, new: str, model_path: str | None = None) -> dict:
    """Give a person another name, in the model and the dataset folder; the summary."""
    new = check_name(new)
    enroller = Enroller(cfg, model_path)
    labels = enroller.store.labels
    if old not in labels:
        raise UserError(f"{old}: not in the model (people: {', '.join(labels)})")
    if new in labels:
        raise UserError(f"{new}: already in the model; forget one of them first")
    labels[labels.index(old)] = new
    result = {"old": old, "new": new, **enroller.save(refit=False)}
    SlugBook(slug_book_path(enroller.model.path)).rename(old, new)  # same person, same entity
    if (enroller.dataset / old).is_dir() and not (enroller.dataset / new).exists():
        (enroller.dataset / old).rename(enroller.dataset / new)
    return result
