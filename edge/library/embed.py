"""Photos and visitors' crops -> store rows: the main face, aligned, through the int8 model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.head import augment
from edge.recognize import FaceModel


@dataclass
class Embedded:
    """Photos turned into store rows, and the ones left out with the reason."""

    keys: list[str] = field(default_factory=list)
    emb: list[np.ndarray] = field(default_factory=list)  # each (N_AUG, D)
    used: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def array(self) -> np.ndarray:
        return np.stack(self.emb)

    def drop(self, index: set[int]) -> None:
        """Leave out the rows at `index` (refused by the guard)."""
        keep = [i for i in range(len(self.keys)) if i not in index]
        self.keys = [self.keys[i] for i in keep]
        self.emb = [self.emb[i] for i in keep]
        self.used = [self.used[i] for i in keep]


class Embedder:
    """The int8 face model; photos go through the one photo -> crop path (edge/stills.py)."""

    def __init__(self, cfg: Config, model: Path, loaded: FaceModel | None = None) -> None:
        self.cfg = cfg
        self.model = loaded or FaceModel.load(model, cfg.recognize)

    def embed(self, paths: list[Path], known: set[str], aligned: bool = False) -> Embedded:
        """The main face of each photo, 4 augmented crops each; `aligned`: the files are
        already aligned face crops (an unknown visitor's captures); `known` keys are skipped."""
        from edge.hashing import file_hash
        from edge.images import read_image

        out = Embedded()
        seen = set(known)
        for path in paths:
            try:
                key = file_hash(path)
                image = read_image(path)
            except (OSError, UserError) as exc:
                out.skipped.append((path, str(exc).split(": ", 1)[-1]))
                continue
            if key in seen:
                out.skipped.append((path, "already enrolled"))
                continue
            crop, why = (image, "") if aligned else self._main_crop(image)
            if crop is None:
                out.skipped.append((path, why))
                continue
            out.emb.append(np.stack([self.model.infer(c)[0] for c in augment(crop, key)]))
            out.keys.append(key)
            out.used.append(path)
            seen.add(key)
        return out

    def _main_crop(self, image: np.ndarray) -> tuple[np.ndarray | None, str]:
        """The aligned crop of the photo's main face, or (None, why not)."""
        from edge.stills import main_crop

        return main_crop(image, self.cfg.detect, self.model.input_size)
