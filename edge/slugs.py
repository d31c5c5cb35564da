"""Home Assistant entity ids that never move between people: a persisted name -> slug map.

Slugs from sorted labels would shift when a retrain adds "Jose" beside "José" (both slug to
`jose`): José's entity, automations included, would then follow someone else. The map keeps
every slug ever given, forgotten people's too, so a slug is never handed to another person.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from pathlib import Path

log = logging.getLogger(__name__)


def slugify(name: str) -> str:
    """Topic- and id-safe form of a name: ASCII lowercase, runs of other characters -> '_'."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "person"


def unique_slug(name: str, taken: set[str]) -> str:
    """slugify(name), suffixed _2, _3, ... until it is not in `taken`."""
    base = slug = slugify(name)
    n = 2
    while slug in taken:
        slug, n = f"{base}_{n}", n + 1
    return slug


def person_slugs(labels: list[str]) -> dict[str, str]:
    """Label -> unique slug, in label order ('anna_b' and 'Anna B' become anna_b, anna_b_2)."""
    out: dict[str, str] = {}
    for label in labels:
        out[label] = unique_slug(label, set(out.values()))
    return out


def slug_book_path(model: str | Path) -> Path | None:
    """Where a model's name -> slug map lives: faces.slugs.json beside faces.tflite."""
    return Path(model).with_suffix(".slugs.json") if str(model) else None


def load_slug_book(path: Path | None) -> dict[str, str]:
    """The name -> slug map in `path`; empty (with a warning) when absent or unreadable."""
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable slug map (%s); starting a new one", path, exc)
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        log.warning("%s: not a name -> slug map; starting a new one", path)
        return {}
    return data


def with_new_people(book: dict[str, str], labels: list[str]) -> dict[str, str]:
    """`book` plus a slug for each label not in it yet, one no name ever had."""
    book = dict(book)
    taken = set(book.values())
    for label in labels:
        if label not in book:
            book[label] = unique_slug(label, taken)
            taken.add(book[label])
    return book


def read_slugs(model: str | Path, labels: list[str]) -> dict[str, str]:
    """Each label's slug from the map beside `model`, writing nothing: a label not in the map
    yet gets the slug the face library will give it (edge/library writes the map)."""
    book = with_new_people(load_slug_book(slug_book_path(model)), labels)
    return {label: book[label] for label in labels}
