"""Person names as users type them: which are usable as a label and a dataset folder."""

from __future__ import annotations

from edge.errors import UserError

UNKNOWN_DIR = "_unknown"  # dataset folder of strangers: trains rejection, never named
RESERVED_NAMES = {"unknown"}  # edge reports strangers under this name


def check_name(name: str) -> str:
    """A person's folder name: non-empty, no path separators or control characters, not
    hidden, not _unknown or unknown."""
    clean = name.strip()
    if (
        not clean
        or clean in {".", ".."}
        or "/" in clean
        or "\\" in clean
        or clean[0] == "."
        or not clean.isprintable()
    ):
        raise UserError(
            f"{name!r}: not a usable name (a folder name without '/', control or invisible characters or "
            "a leading '.')"
        )
    if clean == UNKNOWN_DIR:
        raise UserError(
            f"{clean}: reserved for strangers; copy photos into {UNKNOWN_DIR}/ directly"
        )
    if clean.lower() in RESERVED_NAMES:
        raise UserError(
            f"{clean}: reserved, edge reports strangers as 'unknown'; choose another name"
        )
    return clean
