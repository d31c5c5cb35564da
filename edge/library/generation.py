"""A face library's generations on disk: read one whole, write the next one crash-safely.

faces.json is the commit point: it names the embedding store and carries a generation number.
Before a change touches anything it writes a journal (`.faces.journal.json`) listing the files
it will add and the steps to take once committed; at the next change (or start) an
interrupted change is finished if faces.json has its generation, else rolled back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ModelError, UserError
from edge.facestore import FaceStore, model_file_mode
from edge.library import files
from edge.slugs import load_slug_book

log = logging.getLogger("edge.library")


def meta_path(model: Path) -> Path:
    return model.with_suffix(".json")


def slugs_path(model: Path) -> Path:
    return model.with_suffix(".slugs.json")


def journal_path(model: Path) -> Path:
    return model.with_name(f".{model.stem}.journal.json")


def read_meta(model: Path) -> dict:
    """faces.json as a dict; ModelError (one line) when it is missing or not JSON."""
    path = meta_path(model)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: labels file missing (written by convert train)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not readable ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise ModelError(f"{path}: not a face model's labels file")
    return meta


@dataclass
class State:
    """One generation as read under the lock."""

    model: Path
    meta: dict
    store: FaceStore
    slugs: dict[str, str]

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation", 0))


def read_state(model: Path) -> State:
    """The current generation; UserError/ModelError when the model cannot be changed here."""
    meta = read_meta(model)
    if not meta.get("store"):
        raise UserError(
            f"{meta_path(model)}: this model has no embedding store; retrain it once with "
            "`python -m convert train` to change it on the device"
        )
    store = FaceStore.load(model.with_name(str(meta["store"])))
    if store.labels != list(meta["labels"]):
        raise ModelError(
            f"{model.with_name(meta['store'])}: its people differ from {meta_path(model)}"
        )
    return State(model, meta, store, load_slug_book(slugs_path(model)))


@dataclass
class Plan:
    """What a change writes besides faces.json and the store."""

    copies: list[tuple[Path, Path]] = field(default_factory=list)  # before the commit
    after: list[list[str]] = field(default_factory=list)  # ["move", src, dst] / ["remove", p]
    tflite: Path | None = None  # a new int8 model file (convert train)
    file_mode: int = 0o640  # of copied photos

    def copy(self, src: Path, dst: Path) -> None:
        self.copies.append((src, dst))

    def move_after(self, src: Path, dst: Path) -> None:
        self.after.append(["move", str(src), str(dst)])

    def remove_after(self, path: Path) -> None:
        self.after.append(["remove", str(path)])


def store_name(model: Path, data: bytes) -> str:
    return f"{model.stem}.store-{hashlib.sha256(data).hexdigest()[:12]}.npz"


def commit(state: State, meta: dict, store: FaceStore, slugs: dict[str, str], plan: Plan) -> int:
    """Write the next generation; returns its number. A crash at any point leaves the old or
    the new generation whole (recover() finishes or rolls back)."""
    model = state.model
    mode = model_file_mode(model)
    data = store.to_bytes()
    name = store_name(model, data)
    gen = state.generation + 1
    store_file = model.with_name(name)
    backup = model.with_name(f".{model.name}.prev") if plan.tflite else None
    journal = {
        "generation": gen,
        "store": name,
        "store_is_new": not store_file.exists(),
        "copies": [str(dst) for _, dst in plan.copies],
        "after": plan.after,
        "tflite_backup": str(backup) if backup else None,
        "tflite_new": plan.tflite is not None and not model.exists(),  # the first model
    }
    files.write_atomic(journal_path(model), json.dumps(journal).encode(), mode)
    files.write_atomic(store_file, data, mode)
    for src, dst in plan.copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        files.copy_atomic(src, dst, plan.file_mode)
    if slugs != state.slugs:
        text = json.dumps(slugs, indent=1, ensure_ascii=False) + "\n"
        files.write_atomic(slugs_path(model), text.encode(), mode)
    if plan.tflite is not None and backup is not None:
        if model.exists():
            backup.unlink(missing_ok=True)
            os.link(model, backup)
        os.replace(plan.tflite, model)
    new_meta = {**meta, "store": name, "generation": gen, "previous_store": state.meta.get("store")}
    text = json.dumps(new_meta, indent=1, ensure_ascii=False) + "\n"
    files.write_atomic(meta_path(model), text.encode(), mode)  # the commit point
    _finish(model, journal)
    return gen


def run_steps(steps: list[list[str]]) -> None:
    """A plan's after-steps (moves and removals); each can run again after a crash."""
    for step in steps:
        if step[0] == "move":
            files.move(Path(step[1]), Path(step[2]))
        elif step[0] == "remove":
            files.remove(Path(step[1]))


def _finish(model: Path, journal: dict) -> None:
    """The steps after a commit; each can run again after a crash."""
    run_steps(journal.get("after", []))
    meta = read_meta(model)
    keep = {meta.get("store"), meta.get("previous_store")}  # a reader may still be on the previous
    for old in model.parent.glob(f"{model.stem}.store-*.npz"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    if journal.get("tflite_backup"):
        Path(journal["tflite_backup"]).unlink(missing_ok=True)
    journal_path(model).unlink(missing_ok=True)
    files.sync_dir(model.parent)


def recover(model: Path, folders: list[Path]) -> str | None:
    """Finish or roll back an interrupted change, then remove temp leftovers in the model's
    folder and `folders` (and their subfolders one level down); what was done, or None."""
    done = None
    path = journal_path(model)
    if path.exists():
        try:
            journal = json.loads(path.read_text())
        except (OSError, ValueError):
            journal = None
        try:
            current = int(read_meta(model).get("generation", 0))
        except ModelError:
            current = -1
        if journal is None:
            path.unlink(missing_ok=True)
            done = "removed an unreadable journal"
        elif current == journal["generation"]:
            _finish(model, journal)
            done = f"finished interrupted change {journal['generation']}"
        else:
            for copied in journal.get("copies", []):
                Path(copied).unlink(missing_ok=True)
            if journal.get("store_is_new"):
                model.with_name(journal["store"]).unlink(missing_ok=True)
            backup = journal.get("tflite_backup")
            if backup and Path(backup).exists():
                os.replace(backup, model)
            elif journal.get("tflite_new"):
                model.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            done = f"rolled back interrupted change {journal['generation']}"
    stale = files.leftovers(model.parent)
    stale += [model.parent / n for n in _old_temp_names(model.parent)]
    for folder in folders:
        stale += files.leftovers(folder)
        if folder.is_dir():
            for sub in folder.iterdir():
                if sub.is_dir() and not sub.is_symlink():
                    stale += files.leftovers(sub)
    for leftover in stale:
        files.remove(leftover)
    if stale:
        done = f"{done + '; ' if done else ''}removed {len(stale)} temp file(s)"
    if done:
        log.warning("face library %s: %s", model.with_suffix(".json"), done)
    return done


def _old_temp_names(folder: Path) -> list[str]:
    """Temp files the writers before the library owner left (`.faces.store-*.npz.PID.tmp`)."""
    try:
        return [n for n in os.listdir(folder) if n.startswith(".faces") and n.endswith(".tmp")]
    except OSError:
        return []
