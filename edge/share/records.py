"""A person as the household shares them, and how two copies of one person merge.

Every change carries a stamp (Lamport version, device): a photo added, a photo removed, the
name given, the person forgotten. Merging two copies keeps the newest stamp of each part, so
any order of arrival gives the same person on every Pi. A photo is live when it was added
after it was last removed and after the person was last forgotten.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
STRANGERS = "_unknown"  # the id of faces never to be named (a slug never starts with "_")
Stamp = tuple[int, str]  # (version, device): ordered; equal versions broken by device id
NEVER: Stamp = (0, "")


class RecordError(ValueError):
    """A shared record that cannot be read; its text says why, in one line."""


def _stamp(value: Any, what: str) -> Stamp:
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and value[0] >= 0
        and isinstance(value[1], str)
    ):
        return int(value[0]), value[1]
    raise RecordError(f"{what}: not a [version, device] stamp")


@dataclass
class Photo:
    """One photo of a person: when it was added, its evidence group, its embeddings."""

    at: Stamp
    group: str
    emb: np.ndarray | None = None  # (N_AUG, D) float32; None when not carried
    image: bytes | None = None  # the enrolment photo itself (library.share_photos)
    file: str = ""  # its file name in dataset/<name>/


@dataclass
class Person:
    """One person of the household (or the strangers' faces, id STRANGERS)."""

    id: str
    name: str | None
    name_at: Stamp = NEVER
    forgot: Stamp = NEVER
    photos: dict[str, Photo] = field(default_factory=dict)
    removed: dict[str, Stamp] = field(default_factory=dict)

    def live(self) -> list[str]:
        """The keys of the photos this person has now, sorted."""
        return sorted(
            k
            for k, p in self.photos.items()
            if p.at > self.forgot and p.at > self.removed.get(k, NEVER)
        )

    def version(self) -> int:
        """The newest version of any change to this person."""
        stamps = [self.name_at, self.forgot, *self.removed.values()]
        stamps += [p.at for p in self.photos.values()]
        return max(s[0] for s in stamps)

    def merged(self, other: Person) -> Person:
        """Both copies' changes: the newest stamp of each part wins."""
        photos = dict(self.photos)
        for k, p in other.photos.items():
            mine = photos.get(k)
            if mine is None or p.at > mine.at:
                photos[k] = p
            elif p.at == mine.at and (mine.emb is None or mine.image is None):
                photos[k] = Photo(
                    mine.at,
                    mine.group,
                    p.emb if mine.emb is None else mine.emb,
                    p.image if mine.image is None else mine.image,
                    p.file if mine.image is None else mine.file,
                )
        removed = dict(self.removed)
        for k, s in other.removed.items():
            removed[k] = max(s, removed.get(k, NEVER))
        name, name_at = (
            (other.name, other.name_at)
            if other.name_at > self.name_at
            else (self.name, self.name_at)
        )
        return Person(self.id, name, name_at, max(self.forgot, other.forgot), photos, removed)

    def to_json(self, with_emb: bool = False) -> dict[str, Any]:
        """The record as JSON; `with_emb`: live photos carry their embeddings (float16, base64)."""
        live = set(self.live())
        photos = {}
        for k in sorted(self.photos):
            p = self.photos[k]
            entry: dict[str, Any] = {"at": list(p.at), "group": p.group}
            if with_emb and k in live and p.emb is not None:
                entry["emb"] = base64.b64encode(p.emb.astype("<f2").tobytes()).decode()
                entry["shape"] = list(p.emb.shape)
            if with_emb and k in live and p.image is not None:
                entry["image"] = base64.b64encode(p.image).decode()
                entry["file"] = p.file
            photos[k] = entry
        return {
            "id": self.id,
            "name": self.name,
            "name_at": list(self.name_at),
            "forgot": list(self.forgot),
            "photos": photos,
            "removed": {k: list(s) for k, s in sorted(self.removed.items())},
        }

    def digest(self) -> str:
        """What the record says, embeddings aside: equal digests need no re-publishing."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, obj: Any) -> Person:
        """A record from JSON (a shared message or the share section of faces.json)."""
        if not isinstance(obj, dict):
            raise RecordError("not a JSON object")
        pid, name = obj.get("id"), obj.get("name")
        if not isinstance(pid, str) or not pid or any(c in pid for c in "/+#"):
            raise RecordError(f"id {pid!r}: not a person id")
        if name is not None and not isinstance(name, str):
            raise RecordError(f"{pid}: name is not text")
        photos_in, removed_in = obj.get("photos", {}), obj.get("removed", {})
        if not isinstance(photos_in, dict) or not isinstance(removed_in, dict):
            raise RecordError(f"{pid}: photos / removed are not objects")
        photos = {}
        for k, p in photos_in.items():
            if not isinstance(p, dict) or not isinstance(p.get("group", ""), str):
                raise RecordError(f"{pid}: photo {k[:12]}: not a photo entry")
            emb = None
            if "emb" in p:
                try:
                    raw = base64.b64decode(p["emb"], validate=True)
                    emb = np.frombuffer(raw, "<f2").astype(np.float32).reshape(p["shape"])
                except (ValueError, TypeError, KeyError) as exc:
                    raise RecordError(f"{pid}: photo {k[:12]}: bad embedding ({exc})") from None
            image, file = None, p.get("file", "")
            if "image" in p:
                if not isinstance(file, str) or Path(file).name != file or file.startswith("."):
                    raise RecordError(f"{pid}: photo {k[:12]}: bad file name {file!r}")
                try:
                    image = base64.b64decode(p["image"], validate=True)
                except (ValueError, TypeError) as exc:
                    raise RecordError(f"{pid}: photo {k[:12]}: bad image ({exc})") from None
                if hashlib.sha256(image).hexdigest() != k:
                    raise RecordError(f"{pid}: photo {k[:12]}: the image is not that photo")
            at = _stamp(p.get("at"), f"{pid}: photo {k[:12]}")
            photos[k] = Photo(at, p.get("group") or k, emb, image, file if image else "")
        removed = {k: _stamp(s, f"{pid}: removed {k[:12]}") for k, s in removed_in.items()}
        return cls(
            pid,
            name,
            _stamp(obj.get("name_at", [0, ""]), f"{pid}: name_at"),
            _stamp(obj.get("forgot", [0, ""]), f"{pid}: forgot"),
            photos,
            removed,
        )


def merge_all(*books: dict[str, Person]) -> dict[str, Person]:
    """Every person of every book, each merged across the books."""
    out: dict[str, Person] = {}
    for book in books:
        for pid, person in book.items():
            out[pid] = out[pid].merged(person) if pid in out else person
    return out


def clock_of(people: dict[str, Person]) -> int:
    """The newest version among `people` (0 for none)."""
    return max((p.version() for p in people.values()), default=0)


def message(person: Person, device: str, backbone: str, sent: str) -> bytes:
    """The retained message of one person: the record with embeddings, who sent it, the model."""
    body = {"format": FORMAT, "device": device, "backbone": backbone, "sent": sent}
    body |= person.to_json(with_emb=True)
    return json.dumps(body, separators=(",", ":")).encode()


def read_message(payload: bytes) -> tuple[Person, str, str]:
    """(person, sending device, backbone) of a retained message; RecordError when unreadable."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise RecordError(f"not a format-{FORMAT} person record")
    device, backbone = obj.get("device"), obj.get("backbone")
    if not isinstance(device, str) or not isinstance(backbone, str):
        raise RecordError("device / backbone missing")
    return Person.from_json(obj), device, backbone
