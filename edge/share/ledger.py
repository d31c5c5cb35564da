"""The share section of faces.json: what this Pi's library last agreed with the household.

A local change (enrol, name, correct, remove a photo, forget, rename, merge, a PC model) is
found by comparing the store with that section, and stamped with the next version there, in
the same commit (the library owner calls stamp()).
"""

from __future__ import annotations

import numpy as np

from edge.facestore import FaceStore
from edge.share.records import STRANGERS, Person, Photo, RecordError, clock_of
from edge.slugs import slugify


def people_of(section: dict | None) -> dict[str, Person]:
    """The people of a share section (none when absent or unreadable)."""
    if not isinstance(section, dict) or not isinstance(section.get("people"), dict):
        return {}
    out = {}
    for pid, obj in section["people"].items():
        try:
            out[pid] = Person.from_json(obj)
        except RecordError:
            continue  # written by us: only a hand edit gets here; that person is re-stamped
    return out


def section_of(people: dict[str, Person], clock: int) -> dict:
    """A share section for faces.json (no embeddings: those are in the store)."""
    return {"clock": clock, "people": {pid: people[pid].to_json() for pid in sorted(people)}}


def local_view(store: FaceStore, slugs: dict[str, str]) -> dict[str, tuple[str | None, dict]]:
    """id -> (name, {photo key: group}) of the store: a person's id is their slug."""
    groups = store.groups if store.groups is not None else store.keys
    view: dict[str, tuple[str | None, dict]] = {}
    for cls, label in [(-1, None), *enumerate(store.labels)]:
        pid = STRANGERS if label is None else slugs.get(label) or slugify(label)
        rows = np.flatnonzero(store.y == cls)
        if len(rows) or label is not None:
            view[pid] = (label, {store.keys[i]: groups[i] for i in rows})
    return view


def stamp(
    section: dict | None, store: FaceStore, slugs: dict[str, str], device: str
) -> tuple[dict, list[str]]:
    """The share section after this Pi's change to `store`, and what changed (one line each)."""
    people = people_of(section)
    clock = max(int((section or {}).get("clock", 0)), clock_of(people))
    now = (clock + 1, device)
    changes = []
    view = local_view(store, slugs)
    for pid, (label, keys) in view.items():
        person = people.setdefault(pid, Person(pid, label, now))
        live = set(person.live())
        for key in sorted(set(keys) - live):
            person.photos[key] = Photo(now, keys[key])
        for key in sorted(live - set(keys)):
            person.removed[key] = now
        added, dropped = len(set(keys) - live), len(live - set(keys))
        if person.name != label:
            changes.append(f"{person.name} renamed {label}" if person.name else f"{label} added")
            person.name, person.name_at = label, now
        if added or dropped:
            changes.append(f"{label or 'strangers'}: {added} photo(s) added, {dropped} removed")
    for pid, person in people.items():
        if pid not in view and person.live():
            person.forgot = now
            changes.append(f"{person.name} forgotten")
    return section_of(people, clock + 1 if changes else clock), changes
