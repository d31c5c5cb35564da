"""The one owner of a face library: every change of people, photos and visitors goes here.

Each change holds the library lock (threads and processes), finishes or rolls back an
interrupted change, re-reads the current generation, and writes the next one whole
(edge/library/generation.py). The web app, MQTT commands, the CLI and `convert` call it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import Config
from edge.errors import ModelError, UserError
from edge.facestore import FaceStore
from edge.head import N_AUG, fit_head
from edge.library import files, first_model, thresholds
from edge.library.embed import Embedded, Embedder
from edge.library.generation import (
    Plan,
    State,
    commit,
    read_meta,
    read_state,
    recover,
    run_steps,
)
from edge.library.guard import far_from_person, looks_like_other
from edge.library.lock import library_lock
from edge.names import UNKNOWN_DIR, check_name, same_name, shown_name
from edge.slugs import with_new_people
from edge.vectors import unit

log = logging.getLogger("edge.library")

TRASH = ".trash"  # inside the dataset folder: forgotten people and deleted photos, for a while
FEW_PHOTOS = 3


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


class FaceLibrary:
    """People, their photos and unknown visitors of one face model, and every change to them."""

    def __init__(self, cfg: Config, model_path: str | Path | None = None) -> None:
        self.cfg = cfg
        self.model = Path(model_path or cfg.recognize.model)
        self.dataset = Path(cfg.enroll.dataset)
        self.unknown_dir = Path(cfg.unknown_faces.dir)
        self.trash = self.dataset / TRASH
        self._embedder: tuple[tuple, Embedder] | None = None

    # --- reading (no lock: files are replaced whole) -------------------------------------

    def labels(self) -> list[str]:
        """The people in the model now ([] without a model)."""
        try:
            return [str(x) for x in read_meta(self.model)["labels"]]
        except ModelError:
            return []

    def folders(self) -> list[str]:
        """Person folders in the dataset (not _unknown, hidden or trash)."""
        try:
            return sorted(
                p.name
                for p in self.dataset.iterdir()
                if p.is_dir()
                and not p.is_symlink()
                and p.name != UNKNOWN_DIR
                and not p.name.startswith(".")
            )
        except OSError:
            return []

    def photos_of(self, name: str) -> list[str]:
        """The photo files kept for `name` (dataset/<name>/), sorted."""
        try:
            return sorted(p.name for p in (self.dataset / name).iterdir() if p.is_file())
        except OSError:
            return []

    # --- changing -----------------------------------------------------------------------

    def recover(self) -> str | None:
        """Finish or roll back a change a crash interrupted, remove its leftovers (at start)."""
        if not str(self.model) or not self.model.is_file():
            return None
        try:
            with library_lock(self.model):
                return recover(self.model, [self.dataset, self.unknown_dir])
        except OSError as exc:  # a read-only model folder: nothing can have been half-written
            log.warning("%s: cannot check the face library (%s)", self.model.parent, exc.strerror)
            return None

    @contextmanager
    def _changing(self) -> Iterator[State]:
        if not self.model.name:  # Path("") is "."
            raise ModelError("no face model configured (recognize.model is empty)")
        if not self.model.is_file():  # the first change makes the model (first_model.py)
            first_model.find_backbone(self.model)
            self.model.parent.mkdir(parents=True, exist_ok=True)
        with library_lock(self.model):
            recover(self.model, [self.dataset, self.unknown_dir])
            self._purge_trash()
            if self.model.is_file():
                yield read_state(self.model)
            else:
                yield first_model.empty_state(self.model, first_model.find_backbone(self.model))

    def _embedder_for(self) -> Embedder:
        path = self.model if self.model.is_file() else first_model.find_backbone(self.model)
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
        if self._embedder is None or self._embedder[0] != key:
            made = first_model.embedder(self.cfg, path) if path != self.model else None
            self._embedder = (key, made or Embedder(self.cfg, path))
        return self._embedder[1]

    def _check_new_name(self, state: State, name: str) -> None:
        """UserError when `name` would be a second spelling of someone already there."""
        clash = same_name(name, set(state.store.labels) | set(self.folders()))
        if clash is not None:
            raise UserError(
                f"{shown_name(name)}: the library already has {clash!r} (names that differ only "
                f"in case, spacing or look-alike letters are one person); use {clash!r}"
            )

    def _guard(
        self, state: State, label: str, rows: Embedded, force: bool
    ) -> list[tuple[Path, str]]:
        """Refuse (drop from `rows`) faces that are someone else's; the refusals with reasons."""
        if force or not rows.emb:
            return []
        limit = self.cfg.library.guard_distance
        new = rows.array()
        why: dict[int, str] = {}
        for i, dist in far_from_person(state.store, label, new, limit):
            whose = f"{label}'s other photos" if label in state.store.labels else "the other photos"
            why[i] = (
                f"refused: this face is {dist:.2f} from {whose} (limit {limit:.2f}): someone else?"
            )
        th = state.meta.get("thresholds", {})
        centroids = np.asarray(state.meta.get("centroids", []), np.float32)
        if len(centroids):
            for i, other, dist in looks_like_other(
                state.store, label, new, centroids, float(th.get("max_distance", 0.4))
            ):
                why.setdefault(
                    i, f"refused: the model names this face {other} (distance {dist:.2f})"
                )
        refused = [(rows.used[i], why[i] + "; add it anyway with --force") for i in sorted(why)]
        rows.drop(set(why))
        return refused

    def _refit(self, state: State, store: FaceStore) -> tuple[dict, str]:
        """New head, centroids and thresholds for `store`; the meta and the thresholds' note."""
        n = len(store.labels)
        if n < 1:
            raise UserError("the model needs at least 1 person")
        emb = store.emb
        head = fit_head(emb.reshape(-1, emb.shape[-1]), np.repeat(store.y, N_AUG), n)
        store.weights, store.bias = head.weights, head.bias
        chosen, note = thresholds.choose(state.meta, store)
        if not self.model.is_file():
            note = f"first model, from the int8 backbone; {note}"
        meta = dict(state.meta)
        meta["labels"] = list(store.labels)
        meta["head"] = "store"  # FaceModel applies the refit head, not the model's own
        meta["thresholds"] = {**meta.get("thresholds", {}), **chosen}
        meta["centroids"] = np.round(head.centroids, 6).tolist()
        meta["device"] = {"updated": datetime.now(UTC).isoformat(timespec="seconds"), "note": note}
        return meta, note

    def _slugs(self, state: State, labels: list[str]) -> dict[str, str]:
        return with_new_people(state.slugs, labels)

    def _photo_target(self, folder: Path, name: str, taken: set[Path]) -> Path:
        """A free file name in `folder` (never overwriting a photo already there)."""
        stem, suffix = Path(name).stem, Path(name).suffix
        target, i = folder / name, 1
        while target.exists() or target in taken:
            target, i = folder / f"{stem}-{i}{suffix}", i + 1
        taken.add(target)
        return target

    def _commit(
        self, state: State, meta: dict, store: FaceStore, slugs: dict[str, str], plan: Plan
    ) -> int:
        """commit(); with library.share, the change is stamped for the household (edge/share)."""
        if self.cfg.library.share:
            from edge.share.ledger import stamp

            share, _ = stamp(state.meta.get("share"), store, slugs, self.cfg.device_id())
            meta = {**meta, "share": share}
        return commit(state, meta, store, slugs, plan)

    def adopt_household(self, people: dict) -> tuple[dict, FaceStore]:
        """Merge the household's people (edge/share/records.py) into this library: a new
        generation when someone or some photo changed here. The merged people, the store now."""
        from edge.share.adopt import merged_with

        with self._changing() as state:
            merged, changes, section, adoption = merged_with(
                state.meta, state.store, state.slugs, people, self.cfg.device_id()
            )
            if adoption is None:
                if changes:  # made while sharing was off: their versions are kept from now on
                    commit(
                        state, {**state.meta, "share": section}, state.store, state.slugs, Plan()
                    )
                return merged, state.store
            plan = Plan()
            for old, new in adoption.renamed:
                if (self.dataset / old).is_dir() and not (self.dataset / new).exists():
                    plan.move_after(self.dataset / old, self.dataset / new)
            for name in adoption.forgotten:
                if (self.dataset / name).is_dir():
                    plan.move_after(self.dataset / name, self.trash / f"{_stamp()}-{name}")
            temps = self._shared_photos(merged, adoption.store, plan)
            self._first_model(plan)
            meta, note = self._refit(state, adoption.store)
            try:
                gen = commit(
                    state, {**meta, "share": section}, adoption.store, adoption.slugs, plan
                )
            finally:
                for tmp in temps:
                    tmp.unlink(missing_ok=True)
        for line in adoption.notes:
            log.info("household: %s", line)
        log.info("household: adopted as generation %d; %s", gen, note)
        for name in adoption.forgotten:
            self._history("forget_person", name)
        for old, new in adoption.renamed:
            self._history("rename_person", old, new)
        return merged, adoption.store

    def _shared_photos(self, people: dict, store: FaceStore, plan: Plan) -> list[Path]:
        """With library.share_photos, the household's photos missing here join the plan
        (copied from temp files in the model's folder); those temp files."""
        if not self.cfg.library.share_photos:
            return []
        from edge.share.adopt import photos_to_keep

        temps, taken = [], set()
        for folder, name, data in photos_to_keep(people, store, self.dataset):
            tmp = files.temp_beside(self.model)
            files.write_atomic(tmp, data, 0o600)
            temps.append(tmp)
            plan.copy(tmp, self._photo_target(folder, name, taken))
        return temps

    def _first_model(self, plan: Plan) -> None:
        """With no model yet, the commit installs a copy of the backbone as the model."""
        if not self.model.is_file():
            plan.tflite = first_model.model_copy(self.model, first_model.find_backbone(self.model))

    def _write(self, state: State, store: FaceStore, plan: Plan) -> dict[str, Any]:
        """Refit and commit; the common part of the summary."""
        self._first_model(plan)
        meta, note = self._refit(state, store)
        gen = self._commit(state, meta, store, self._slugs(state, store.labels), plan)
        log.info("face library generation %d: %s", gen, note)
        return {"people": len(store.labels), "generation": gen, "thresholds": note}

    @staticmethod
    def _add(store: FaceStore, label: str | None, rows: Embedded, group: str | None) -> None:
        if label is not None and label not in store.labels:
            store.labels.append(label)
        cls = -1 if label is None else store.labels.index(label)
        store.emb = np.concatenate([store.emb, rows.array()])
        store.y = np.concatenate([store.y, np.full(len(rows.emb), cls)])
        old = store.groups if store.groups is not None else store.keys  # [] for a first model
        store.groups = list(old) + [group or k for k in rows.keys]
        store.keys = store.keys + rows.keys

    def enroll(self, name: str, photos: list[Path], force: bool = False) -> dict[str, Any]:
        """Add photos of `name` (a new or known person); each photo used, skipped or refused."""
        t0 = time.monotonic()
        name = check_name(name)
        with self._changing() as state:
            if name not in state.store.labels:
                self._check_new_name(state, name)
            rows = self._embedder_for().embed(photos, set(state.store.keys))
            skipped = rows.skipped + self._guard(state, name, rows, force)
            for path, reason in skipped:
                log.warning("%s: %s", path, reason)
            if not rows.used:
                reasons = "; ".join(f"{p.name}: {r}" for p, r in skipped[:3])
                raise UserError(
                    f"{name}: none of the {len(photos)} photo(s) could be enrolled ({reasons})"
                )
            store = state.store
            self._add(store, name, rows, None)
            plan, taken = Plan(), set()
            folder = self.dataset / name
            for path in rows.used:
                plan.copy(path, self._photo_target(folder, path.name, taken))
            result = self._write(state, store, plan)
            have = store.counts()[name]
        if have < FEW_PHOTOS:
            log.warning("%s: %d photo(s) enrolled; 3 or more make recognition reliable", name, have)
        log.info(
            "%s: %d photo(s) added (%d in all); kept in %s", name, len(rows.used), have, folder
        )
        return {
            "name": name,
            "added": len(rows.used),
            "photos": have,
            "files": [dst.name for _, dst in plan.copies],
            "skipped": [{"file": p.name, "reason": r} for p, r in skipped],
            **result,
            "dataset": str(folder),
            "seconds": round(time.monotonic() - t0, 2),
        }

    def visitor_captures(self, visit: int) -> list[dict]:
        """The stored captures of one unknown visit; UserError when there are none."""
        from edge.unknowns import visitors

        found = visitors(self.unknown_dir)
        if visit not in found:
            listed = ", ".join(str(v) for v in sorted(found)[-10:]) or "none"
            raise UserError(
                f"visitor {visit}: no saved crops in {self.unknown_dir} (latest visitors: {listed})"
            )
        return found[visit]

    def name_visitor(self, visit: int, name: str | None, force: bool = False) -> dict[str, Any]:
        """Name an unknown visitor from their saved crops (None: ignore them, i.e. teach the
        model never to name that face); the crops move to dataset/<name>/ or dataset/_unknown/."""
        return self.name_visitors([visit], name, force)

    def name_visitors(
        self, visits: list[int], name: str | None, force: bool = False
    ) -> dict[str, Any]:
        """Name (or ignore) the visits of one stranger together, in one change."""
        from edge.unknowns import SUFFIXES

        t0 = time.monotonic()
        label = check_name(name) if name is not None else None
        with self._changing() as state:
            if label is not None and label not in state.store.labels:
                self._check_new_name(state, label)
            store, plan, taken, added = state.store, Plan(), set(), 0
            folder = self.dataset / (label or UNKNOWN_DIR)
            for visit in visits:
                captures = self.visitor_captures(visit)
                images = [Path(c["path"]).with_name(c["image"]) for c in captures]
                rows = self._embedder_for().embed(images, set(store.keys), aligned=True)
                if not rows.used:
                    raise UserError(
                        f"visitor {visit}: none of the {len(images)} crop(s) is readable and new"
                    )
                if label is not None and not force:
                    self._guard_visit(state, label, rows, visit)
                first = min(c["time"] for c in captures)
                self._add(store, label, rows, f"visit:{visit}:{first:.0f}")
                added += len(rows.used)
                for path in rows.used:
                    plan.copy(path, self._photo_target(folder, path.name, taken))
                for c in captures:
                    for suffix in SUFFIXES:
                        plan.remove_after(Path(c["path"]).with_suffix(suffix))
            result = self._write(state, store, plan)
        what = f"named {label}" if label else "ignored (never to be named)"
        log.info("visitor(s) %s %s: %d crop(s), kept in %s", visits, what, added, folder)
        return {
            "visitor": visits[0],
            "visitors": list(visits),
            "name": label,
            "added": added,
            **result,
            "dataset": str(folder),
            "seconds": round(time.monotonic() - t0, 2),
        }

    def correct(self, photo: Path, name: str | None, force: bool = False) -> dict[str, Any]:
        """A face the model named wrongly (an event's aligned crop): it joins `name`, or with
        None becomes a face never to be named; kept in dataset/ like any enrolment."""
        label = check_name(name) if name is not None else None
        with self._changing() as state:
            if label is not None and label not in state.store.labels:
                self._check_new_name(state, label)
            rows = self._embedder_for().embed([photo], set(state.store.keys), aligned=True)
            if not rows.used:
                why = rows.skipped[0][1] if rows.skipped else "no face"
                raise UserError(f"{photo.name}: {why}")
            if label is not None:
                refused = self._guard(state, label, rows, force)
                if refused:
                    raise UserError(f"{photo.name}: {refused[0][1]}")
            store, plan = state.store, Plan()
            self._add(store, label, rows, None)
            folder = self.dataset / (label or UNKNOWN_DIR)
            plan.copy(photo, self._photo_target(folder, photo.name, set()))
            result = self._write(state, store, plan)
        log.info("%s: corrected to %s", photo.name, label or "never to be named")
        return {"name": label, "file": plan.copies[0][1].name, **result}

    def _guard_visit(self, state: State, label: str, rows: Embedded, visit: int) -> None:
        """A visit is one face: refuse it whole when it is someone else's."""
        mean = unit(rows.array()[:, 0].mean(axis=0))[None, None, :]
        probe = Embedded(keys=["visit"], emb=[mean[0]], used=[Path(f"visitor {visit}")])
        refused = self._guard(state, label, probe, force=False)
        if refused:
            raise UserError(f"visitor {visit} as {label}: {refused[0][1]}")

    def delete_visitor(self, visit: int) -> dict[str, Any]:
        """Remove a visitor's saved crops without teaching the model anything."""
        from edge.unknowns import SUFFIXES

        with library_lock(self.model) if self.model.is_file() else nullcontext():
            caps = self.visitor_captures(visit)
            for c in caps:
                for suffix in SUFFIXES:
                    Path(c["path"]).with_suffix(suffix).unlink(missing_ok=True)
        log.info("visitor %d deleted (%d crop(s))", visit, len(caps))
        return {"visitor": visit, "deleted": len(caps)}

    def remove_photo(self, name: str, file: str) -> dict[str, Any]:
        """Take one photo out of a person (their rows removed, refit); it goes to the trash."""
        from edge.hashing import file_hash

        with self._changing() as state:
            path = self.dataset / name / file
            if not path.is_file() or path.is_symlink() or Path(file).name != file:
                raise UserError(f"{name}/{file}: no such photo")
            key = file_hash(path)
            store = state.store
            drop = np.array([k == key for k in store.keys], dtype=bool)
            removed = int(drop.sum())
            plan = Plan()
            plan.move_after(path, self.trash / f"{_stamp()}-{name}" / file)
            if removed and name in store.labels:
                cls = store.labels.index(name)
                if not np.any((store.y == cls) & ~drop):
                    raise UserError(f"{file}: {name}'s last enrolled photo; forget {name} instead")
                store.keep(~drop)
                result = self._write(state, store, plan)
            else:  # not in the model: nothing to commit, only the move
                run_steps(plan.after)
                result = {}
        log.info("%s: photo %s moved to the trash (%d model row(s))", name, file, removed)
        return {"name": name, "file": file, "model_rows_removed": removed, **result}

    def forget(self, name: str) -> dict[str, Any]:
        """Remove a person from the model; their photos go to the trash (restorable)."""
        with self._changing() as state:
            store = state.store
            in_model = name in store.labels
            if not in_model and name not in self.folders():
                known = ", ".join(store.labels)
                raise UserError(f"{shown_name(name)}: not in the library (people: {known})")
            plan = Plan()
            folder = self.dataset / name
            trash = self.trash / f"{_stamp()}-{name}"
            if folder.is_dir():
                plan.move_after(folder, trash)
            result: dict[str, Any] = {}
            if in_model:
                if len(store.labels) <= 1:  # a model of one person is a model (first_model.py)
                    raise UserError(f"{name}: cannot forget the model's last person")
                idx = store.labels.index(name)
                keep = store.y != idx
                removed = int(np.sum(~keep))
                store.keep(keep)
                store.y = np.where(store.y > idx, store.y - 1, store.y)
                del store.labels[idx]
                result = {"removed": removed, **self._write(state, store, plan)}
            else:  # only a dataset folder: nothing to commit, only the move
                run_steps(plan.after)
        self._history("forget_person", name)
        days = self.cfg.library.trash_days
        kept = str(trash) if plan.after else None
        log.info("%s forgotten%s", name, f"; photos in {kept} for {days:g} days" if kept else "")
        return {"name": name, **result, "trash": kept}

    def rename(self, old: str, new: str, merge: bool = False) -> dict[str, Any]:
        """Give a person another name (the same entity in Home Assistant); onto an existing
        person only with `merge` (their photos and rows become one person)."""
        new = check_name(new)
        with self._changing() as state:
            store = state.store
            if old not in store.labels:
                raise UserError(
                    f"{shown_name(old)}: not in the model (people: {', '.join(store.labels)})"
                )
            others = (set(store.labels) | set(self.folders())) - {old}
            clash = new if new in others else same_name(new, others)
            plan, taken = Plan(), set()
            if clash is not None and not merge:
                raise UserError(
                    f"{shown_name(new)}: {clash!r} is already in the library; forget one of them, or "
                    f"merge {old!r} into {clash!r} (--merge)"
                )
            if clash is not None:
                return self._merge(state, old, clash, plan, taken)
            slugs = self._slugs(state, store.labels)  # old keeps its slug in the map too
            slugs[new] = slugs[old]
            store.labels[store.labels.index(old)] = new
            if (self.dataset / old).is_dir():
                plan.move_after(self.dataset / old, self.dataset / new)
            meta = {**state.meta, "labels": list(store.labels)}
            gen = self._commit(state, meta, store, slugs, plan)
        self._history("rename_person", old, new)
        log.info("%s renamed %s (same entity, slug %s)", old, new, slugs[new])
        return {"old": old, "new": new, "people": len(store.labels), "generation": gen}

    def _merge(self, state: State, old: str, into: str, plan: Plan, taken: set) -> dict[str, Any]:
        store = state.store
        if into in store.labels:
            src, dst = store.labels.index(old), store.labels.index(into)
            y = np.where(store.y == src, dst, store.y)
            store.y = np.where(y > src, y - 1, y)
            del store.labels[src]
        else:
            store.labels[store.labels.index(old)] = into
        folder = self.dataset / old
        if folder.is_dir():
            for photo in sorted(folder.iterdir()):
                if photo.is_file():
                    plan.move_after(
                        photo, self._photo_target(self.dataset / into, photo.name, taken)
                    )
            plan.remove_after(folder)
        result = self._write(state, store, plan)
        self._history("rename_person", old, into)
        log.info("%s merged into %s", old, into)
        return {"old": old, "new": into, "merged": True, **result}

    def adopt_training(self, tflite: Path, meta: dict, store: FaceStore) -> int:
        """Install a model trained by `convert train` (its int8 file, labels and store) as the
        next generation; its calibrated thresholds, capped, become the new baseline."""
        meta = dict(meta)
        trained = {k: v for k, v in meta.get("thresholds", {}).items() if k != "baseline"}
        base = thresholds.baseline({"thresholds": trained})
        meta["thresholds"] = {
            **trained,
            "min_probability": base["min_probability"],
            "max_distance": base["max_distance"],
            "baseline": base,
        }
        if (base["min_probability"], base["max_distance"]) != (
            trained.get("min_probability"),
            trained.get("max_distance"),
        ):
            log.warning(
                "thresholds: calibrated probability >= %.2f, distance <= %.2f are looser than a "
                "few people can vouch for; using %.2f / %.2f (docs/recognition.md)",
                trained.get("min_probability", 0),
                trained.get("max_distance", 0),
                base["min_probability"],
                base["max_distance"],
            )
        self.model.parent.mkdir(parents=True, exist_ok=True)
        with library_lock(self.model):
            recover(self.model, [self.dataset])
            try:
                state = read_state(self.model)
            except (UserError, ModelError):
                state = State(self.model, {}, store, {})
            plan = Plan(tflite=tflite)
            return self._commit(state, meta, store, self._slugs(state, store.labels), plan)

    def _history(self, change: str, *names: str) -> None:
        """The event history follows a forget or a rename (edge/history.py)."""
        import sqlite3

        from edge import history

        if not self.cfg.history.enabled:
            return
        try:
            n = getattr(history, change)(self.cfg.history.path, *names)
        except (sqlite3.Error, OSError) as exc:
            log.warning("history %s: cannot %s %s (%s)", self.cfg.history.path, change, names, exc)
            return
        if n:
            log.info("history: %s %s (%d events)", change.replace("_", " "), names[0], n)

    # --- the trash ------------------------------------------------------------------------

    def _purge_trash(self) -> None:
        """Remove trash entries older than library.trash_days (their stamp says when)."""
        days = self.cfg.library.trash_days
        try:
            entries = list(self.trash.iterdir())
        except OSError:
            return
        cutoff = time.time() - days * 86400
        for entry in entries:
            try:
                when = datetime.strptime(entry.name[:15], "%Y%m%d-%H%M%S").timestamp()
            except ValueError:
                continue
            if when < cutoff:
                files.remove(entry)
                log.info("trash: %s removed after %g days", entry.name, days)
