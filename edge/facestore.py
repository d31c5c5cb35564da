"""The embeddings a face model's head was fitted on, kept beside the model (`faces.store-*.npz`).

`convert train` writes them with the model; the face library (edge/library/) changes them on
the Pi and refits the head from them (numpy, no TensorFlow), one generation at a time.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ModelError


@dataclass
class FaceStore:
    """Per photo: N_AUG embeddings, the class (-1 = a stranger) and a content key."""

    labels: list[str]  # class order, as in faces.json
    emb: np.ndarray  # (M, N_AUG, D) float32, L2-normalized
    y: np.ndarray  # (M,) int, index into labels; -1 = stranger (_unknown)
    keys: list[str]  # sha256 of each photo (or crop): the same photo is not added twice
    groups: list[str] | None = None  # one piece of evidence each (a photo, or a whole visit)
    weights: np.ndarray | None = None  # (D, N) head refit on the device; None: the model's own
    bias: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path) -> FaceStore:
        """Read a store file; ModelError (one line) when it is missing or not a store."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise ModelError(
                f"{path}: embedding store missing (written by convert train)"
            ) from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{path}: not a readable embedding store ({exc})") from None
        try:
            labels = json.loads(str(data["labels"]))
            store = cls(
                labels=list(labels),
                emb=data["emb"].astype(np.float32),
                y=data["y"].astype(int),
                keys=[str(k) for k in data["keys"]],
                groups=[str(g) for g in data["groups"]] if "groups" in data else None,
                weights=data["weights"].astype(np.float32) if "weights" in data else None,
                bias=data["bias"].astype(np.float32) if "bias" in data else None,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: malformed embedding store ({exc})") from None
        m = len(store.y)
        if store.groups is None:
            store.groups = list(store.keys)
        if (
            store.emb.ndim != 3
            or len(store.emb) != m
            or len(store.keys) != m
            or len(store.groups) != m
        ):
            raise ModelError(f"{path}: malformed embedding store (sizes disagree)")
        return store

    def to_bytes(self) -> bytes:
        """The .npz content (embeddings as float16: half the size, cosine unchanged to 1e-3)."""
        arrays = {
            "labels": np.array(json.dumps(self.labels)),
            "emb": self.emb.astype(np.float16),
            "y": self.y.astype(np.int32),
            "keys": np.array(self.keys, dtype=str),
            "groups": np.array(self.groups if self.groups is not None else self.keys, dtype=str),
        }
        if self.weights is not None and self.bias is not None:
            arrays |= {"weights": self.weights, "bias": self.bias}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where the boolean mask `rows` is True."""
        self.emb, self.y = self.emb[rows], self.y[rows]
        self.keys = [k for k, ok in zip(self.keys, rows, strict=True) if ok]
        groups = self.groups if self.groups is not None else self.keys
        self.groups = [g for g, ok in zip(groups, rows, strict=True) if ok]

    def counts(self) -> dict[str, int]:
        """Photos per person."""
        return {name: int(np.sum(self.y == i)) for i, name in enumerate(self.labels)}


def load_head(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The head refit on the device, (weights (D, N), bias (N,)), or None if the store has none."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "weights" not in z.files:
                return None
            return z["weights"].astype(np.float32), z["bias"].astype(np.float32)
    except FileNotFoundError:
        raise ModelError(f"{path}: embedding store missing (written by convert train)") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a readable embedding store ({exc})") from None


def model_file_mode(path: Path) -> int:
    """The mode of the files beside a model: faces.tflite's own (the service user reads them
    through the read-only checkout, systemd/install.sh), or 0644 less the umask."""
    try:
        return path.with_suffix("").with_suffix(".tflite").stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o644 & ~umask
