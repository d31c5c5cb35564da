"""The one split of ../shared/data/faces that tests and benchmarks share.

Known people: the first 7 names (sorted); strangers: the last 3. Of each known person,
the first 7 photos (sorted) train the model; the remaining ones are held out for clips and tests.
"""

from __future__ import annotations

from pathlib import Path

N_KNOWN = 7
N_TRAIN_PHOTOS = 7


def people(faces_dir: Path) -> list[str]:
    """All identity folders, sorted."""
    return sorted(p.name for p in faces_dir.iterdir() if p.is_dir())


def known(faces_dir: Path) -> list[str]:
    """The people the model knows."""
    return people(faces_dir)[:N_KNOWN]


def strangers(faces_dir: Path) -> list[str]:
    """People the model must never name."""
    return people(faces_dir)[N_KNOWN:]


def photos(faces_dir: Path, name: str) -> list[Path]:
    """One person's photos, sorted."""
    return sorted(
        p for p in (faces_dir / name).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )


def train_photos(faces_dir: Path, name: str) -> list[Path]:
    """Photos of a known person used for training."""
    return photos(faces_dir, name)[:N_TRAIN_PHOTOS]


def heldout_photos(faces_dir: Path, name: str) -> list[Path]:
    """Photos never used for training (all of a stranger's)."""
    ph = photos(faces_dir, name)
    return ph[N_TRAIN_PHOTOS:] if name in known(faces_dir) else ph


def make_train_dataset(faces_dir: Path, out: Path) -> Path:
    """A dataset/<Name>/*.jpg folder of symlinks to the known people's training photos."""
    for name in known(faces_dir):
        (out / name).mkdir(parents=True, exist_ok=True)
        for photo in train_photos(faces_dir, name):
            link = out / name / photo.name
            if not link.exists():
                link.symlink_to(photo)
    return out
