"""`convert enroll NAME PHOTOS...` and `convert forget NAME`: change the dataset, then retrain.

The dataset is the one the current model was trained on (recorded in faces.json) unless
--dataset says otherwise. Retraining reuses the dataset's crop/embedding cache, so only the
new photos are detected and embedded; the head is refitted and the model re-exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from convert.dataset import UNKNOWN_DIR, CropCache, default_cache_dir, load_dataset
from edge.config import Config
from edge.errors import UserError
from edge.hashing import file_hash
from edge.images import iter_images
from edge.names import check_name

log = logging.getLogger("convert.enroll")


def _meta(model: Path) -> dict:
    path = model.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable model metadata ({exc})") from None


def resolve_dataset(dataset: str | None, model: Path) -> Path:
    """--dataset, else the dataset recorded in the model's faces.json."""
    if dataset:
        root = Path(dataset)
    else:
        recorded = _meta(model).get("dataset", {}).get("path")
        if not recorded:
            raise UserError(
                f"{model.with_suffix('.json')}: no dataset recorded; pass --dataset DIR"
            )
        root = Path(recorded)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found (pass --dataset DIR)")
    return root


def _same_person(root: Path, name: str) -> None:
    """'alice' when the dataset has 'Alice': one person, one spelling."""
    other = [p for p in _people(root) if p.casefold() == name.casefold() and p != name]
    if other:
        raise UserError(
            f"{name}: the dataset already has {other[0]!r} (names differing only in case are "
            f"one person); use {other[0]!r}"
        )


def _people(root: Path) -> list[str]:
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != UNKNOWN_DIR
    )


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix, i = target.stem, target.suffix, 1
    while target.exists():
        target = folder / f"{stem}-{i}{suffix}"
        i += 1
    return target


def _retrain(
    root: Path,
    model: Path,
    cfg: Config,
    models_dir: Path,
    backbone: str | None,
    weights: str | None,
) -> dict:
    from convert import cli_train

    meta = _meta(model)
    args = argparse.Namespace(
        dataset=str(root),
        out=str(model),
        backbone=backbone or meta.get("backbone", "facenet"),
        weights=weights,
        seed=0,
        cache=None,
    )
    return cli_train.train(args, cfg, models_dir)


def enroll(
    name: str,
    photos: list[str],
    cfg: Config,
    model: Path,
    models_dir: Path,
    dataset: str | None = None,
    backbone: str | None = None,
    weights: str | None = None,
) -> dict:
    """Copy the photos that show one face into DATASET/NAME/, retrain, re-export; the summary."""
    name = check_name(name)
    root = resolve_dataset(dataset, model)
    _same_person(root, name)
    missing = [p for p in photos if not Path(p).exists()]
    if missing:
        raise UserError(f"{missing[0]}: no such photo or folder")
    from edge.images import file_problem

    files = []
    for f in iter_images(photos):
        problem = file_problem(f)
        if problem:  # a FIFO would hang the copy below
            log.warning("skipped %s: %s", f, problem)
        else:
            files.append(f)
    if not files:
        raise UserError(f"{' '.join(photos)}: no photos found")
    meta = _meta(model)
    size = int(meta.get("input_size", 160))
    staging = root / f".enroll-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / name).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, _free_name(staging / name, Path(f).name))
        # Same cache as training: the crops found here are not detected again by train.
        cache = CropCache(default_cache_dir(root))
        checked = load_dataset(staging, cfg.detect, size, cache, min_photos=1)
        usable = {s.path.name for s in checked.samples}
        existing = len(list((root / name).glob("*"))) if (root / name).is_dir() else 0
        if not usable or len(usable) + existing < 2:
            reasons = "; ".join(f"{p.name}: {r}" for p, r in checked.skipped[:3])
            raise UserError(
                f"{name}: {len(usable)} usable photo(s) of {len(files)}"
                f"{' (' + reasons + ')' if reasons else ''}; need at least 2 with one clear face"
            )
        (root / name).mkdir(exist_ok=True)
        have = {file_hash(p) for p in (root / name).iterdir() if p.is_file()}
        added = []
        for f in sorted((staging / name).iterdir()):
            digest = file_hash(f)
            if f.name in usable and digest not in have:  # the same photo twice: once
                have.add(digest)
                target = _free_name(root / name, f.name)
                shutil.move(str(f), target)
                added.append(str(target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not added:
        raise UserError(f"{name}: nothing new, those photos are already in {root / name}")
    log.info("%s: added %d of %d photos to %s; retraining", name, len(added), len(files), root)
    metrics = _retrain(root, model, cfg, models_dir, backbone, weights)
    return {
        "name": name,
        "dataset": str(root),
        "added": len(added),
        "rejected": len(files) - len(added),
        "model": str(model),
        "metrics": metrics,
    }


def forget(
    name: str,
    cfg: Config,
    model: Path,
    models_dir: Path,
    dataset: str | None = None,
    backbone: str | None = None,
    weights: str | None = None,
) -> dict:
    """Delete DATASET/NAME/ and retrain without that person; the summary."""
    name = check_name(name)
    root = resolve_dataset(dataset, model)
    people = _people(root)
    if name not in people:
        raise UserError(f"{name}: not in {root} (people there: {', '.join(people) or 'none'})")
    if len(people) - 1 < 2:
        raise UserError(f"{name}: cannot forget, the model needs at least 2 people left")
    photos = sum(1 for p in (root / name).rglob("*") if p.is_file())
    shutil.rmtree(root / name)
    log.info("%s: removed %d photos from %s; retraining", name, photos, root)
    metrics = _retrain(root, model, cfg, models_dir, backbone, weights)
    return {
        "name": name,
        "dataset": str(root),
        "removed": photos,
        "model": str(model),
        "metrics": metrics,
    }
