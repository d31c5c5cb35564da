"""Person names as users type them: one rule for the CLI, the web app and MQTT.

A name is usable as a label and a dataset folder; two names are the same person's when
their skeletons match (case, Unicode form, look-alike letters, and ' ', '_', '-', '.' runs
folded), so `tony_blair`, `Tony Blair` and a Cyrillic `Тony_Blair` all mean `Tony_Blair`.
"""

from __future__ import annotations

import re
import unicodedata

from edge.errors import UserError

UNKNOWN_DIR = "_unknown"  # dataset folder of strangers: trains rejection, never named
RESERVED_NAMES = {"unknown"}  # edge reports strangers under this name
MAX_NAME = 64  # characters: a label, a folder, a Home Assistant entity name

# Cyrillic and Greek letters drawn like Latin ones (Unicode's confusables, the common part)
_LOOK_ALIKES = str.maketrans(
    "аАвВеЕзЗіІјЈкКмМнНоОрРсСтТуУхХѕЅԁԛԜԝ"  # Cyrillic
    "αΑβΒεΕηΗιΙκΚμΜνΝοΟρΡτΤυΥχΧζΖ",  # Greek
    "aABBeE33iIjJkKmMHHoOpPcCTTyYxXsSdqWwaABBeEHHiIkKMMvNoOpPTTuYxXZZ",
)
_SEPARATORS = re.compile(r"[\s_.\-]+")


def skeleton(name: str) -> str:
    """The form two names share when they would look or mean alike to a person."""
    text = unicodedata.normalize("NFKC", name).translate(_LOOK_ALIKES).casefold()
    return _SEPARATORS.sub(" ", text).strip()


def check_name(name: str) -> str:
    """A person's name as stored: trimmed, NFC; UserError (one line) when it is not usable."""
    if not isinstance(name, str):
        raise UserError(f"{name!r}: a name must be text")
    clean = unicodedata.normalize("NFC", name.strip())
    if (
        not clean
        or clean in {".", ".."}
        or "/" in clean
        or "\\" in clean
        or clean[0] == "."
        or not clean.isprintable()
    ):
        raise UserError(
            f"{shown_name(name)}: not a usable name (a folder name without '/', control or "
            "invisible characters or a leading '.')"
        )
    if len(clean) > MAX_NAME:
        raise UserError(f"{shown_name(clean)}: longer than {MAX_NAME} characters")
    if clean == UNKNOWN_DIR:
        raise UserError(
            f"{clean}: reserved for strangers; copy photos into {UNKNOWN_DIR}/ directly"
        )
    if skeleton(clean) in {skeleton(r) for r in RESERVED_NAMES}:
        raise UserError(
            f"{clean}: reserved, edge reports strangers as 'unknown'; choose another name"
        )
    return clean


def same_name(name: str, others: list[str] | set[str]) -> str | None:
    """The other name that means the same person as `name` (not `name` itself), or None."""
    key = skeleton(name)
    for other in sorted(others):
        if other != name and skeleton(other) == key:
            return other
    return None


def shown_name(name: object, limit: int = 40) -> str:
    """A name for a one-line message: repr, cut to `limit` characters."""
    text = repr(name)
    return text if len(text) <= limit else f"{text[:limit]}...' ({len(str(name))} characters)"
