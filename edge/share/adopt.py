"""The household's merged people as this Pi's embedding store: who is live, under which name,
with which photos' embeddings; and one line per person saying what changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.facestore import FaceStore
from edge.hashing import file_hash
from edge.names import same_name
from edge.share.ledger import local_view, people_of, section_of, stamp
from edge.share.records import STRANGERS, Person, clock_of, merge_all


@dataclass
class Adoption:
    """A new store for the household's people, and what it changes here."""

    store: FaceStore
    slugs: dict[str, str]
    renamed: list[tuple[str, str]] = field(default_factory=list)  # dataset folders to move
    forgotten: list[str] = field(default_factory=list)  # dataset folders to the trash
    notes: list[str] = field(default_factory=list)


def _labels(live: dict[str, Person]) -> tuple[dict[str, str], list[str]]:
    """pid -> label (two ids under one name, from two Pis naming someone at once, share the
    first id's label) and the merges that made; ids in sorted order, so every Pi agrees."""
    label_of, notes, first = {}, [], {}
    for pid in sorted(live):
        name = live[pid].name or pid
        clash = same_name(name, set(first))
        if clash is not None:
            label_of[pid] = clash
            notes.append(f"{name} ({pid}) and {clash} ({first[clash]}) are one person: merged")
        else:
            first[name] = pid
            label_of[pid] = name
    return label_of, notes


def materialize(
    people: dict[str, Person], store: FaceStore, slugs: dict[str, str]
) -> Adoption | None:
    """The store `people` make (embeddings from `store` or the records); None when it holds
    the same people with the same photos as `store`."""
    row_of = {k: i for i, k in enumerate(store.keys)}
    live = {pid: p for pid, p in people.items() if pid != STRANGERS and p.live()}
    label_of, notes = _labels(live)
    labels = [x for x in store.labels if x in label_of.values()]
    labels += sorted(set(label_of.values()) - set(labels))
    holders = dict(live)
    if STRANGERS in people:
        holders[STRANGERS] = people[STRANGERS]
    owner: dict[str, tuple] = {}  # a key live under two people: the newer addition holds it
    for pid, p in holders.items():
        for key in p.live():
            if key not in owner or p.photos[key].at > owner[key][1].at:
                owner[key] = (pid, p.photos[key])
    emb, y, keys, groups, missing = [], [], [], [], 0
    for key in sorted(owner, key=lambda k: (owner[k][1].at, k)):
        pid, photo = owner[key]
        vec = store.emb[row_of[key]] if key in row_of else photo.emb
        if vec is None:
            missing += 1
            continue
        emb.append(vec)
        y.append(-1 if pid == STRANGERS else labels.index(label_of[pid]))
        keys.append(key)
        groups.append(photo.group)
    if missing:
        notes.append(f"{missing} photo(s) left out: their embeddings did not arrive")
    new = FaceStore(
        labels=labels,
        emb=np.stack(emb).astype(np.float32) if emb else store.emb[:0],
        y=np.asarray(y, int),
        keys=keys,
        groups=groups,
    )
    new_slugs = dict(slugs)
    for pid in sorted(live, reverse=True):  # the first id of a shared name wins
        new_slugs[label_of[pid]] = pid
    before, after = local_view(store, slugs), local_view(new, new_slugs)
    if labels == store.labels and {p: set(v[1]) for p, v in before.items()} == {
        p: set(v[1]) for p, v in after.items()
    }:
        return None
    out = Adoption(new, new_slugs, notes=notes)
    for pid in sorted(set(before) | set(after)):
        old_name, old_keys = before.get(pid, (None, {}))
        new_name, new_keys = after.get(pid, (None, {}))
        who = new_name or old_name or "strangers"
        if pid not in after and old_name is not None:
            if pid in label_of and label_of[pid] != old_name:  # merged under another spelling
                out.renamed.append((old_name, label_of[pid]))
            elif pid not in label_of:
                out.forgotten.append(old_name)
                out.notes.append(f"{old_name} forgotten")
            continue
        if old_name and new_name and old_name != new_name:
            out.renamed.append((old_name, new_name))
            out.notes.append(f"{old_name} renamed {new_name}")
        plus, minus = set(new_keys) - set(old_keys), set(old_keys) - set(new_keys)
        if plus or minus:
            devices = sorted({owner[k][1].at[1] for k in plus if k in owner})
            src = f" from {', '.join(devices)}" if devices else ""
            new_person = pid not in before
            out.notes.append(
                f"{who}{' added' if new_person else ''}: {len(plus)} photo(s) added{src}, "
                f"{len(minus)} removed ({len(new_keys)} now)"
            )
    return out


def merged_with(
    meta: dict, store: FaceStore, slugs: dict[str, str], people: dict[str, Person], device: str
) -> tuple[dict[str, Person], list[str], dict, Adoption | None]:
    """This library (its changes not stamped yet included) merged with the household's
    `people`: the merged people, the local changes, the share section, the adoption."""
    section, changes = stamp(meta.get("share"), store, slugs, device)
    merged = merge_all(people_of(section), people)
    return merged, changes, section_of(merged, clock_of(merged)), materialize(merged, store, slugs)


def photos_to_keep(people: dict[str, Person], store: FaceStore, dataset: Path) -> list[tuple]:
    """(folder, file name, image bytes) of the shared photos of `store`'s people that their
    dataset folder here lacks (library.share_photos)."""
    images = {k: p for person in people.values() for k, p in person.photos.items() if p.image}
    out, have = [], {}
    for i, key in enumerate(store.keys):
        if store.y[i] < 0 or key not in images:
            continue
        folder = dataset / store.labels[store.y[i]]
        if folder not in have:
            have[folder] = (
                {file_hash(f) for f in folder.iterdir() if f.is_file()}
                if folder.is_dir()
                else set()
            )
        if key not in have[folder]:
            out.append((folder, images[key].file, images[key].image))
    return out
