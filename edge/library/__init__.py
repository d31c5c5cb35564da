"""The face library: one owner of people, photos, visitors and slugs (edge/library/owner.py)."""

from edge.library.owner import FaceLibrary

__all__ = ["FaceLibrary"]
