"""The first face model, made on the device from the int8 backbone: no TensorFlow needed.

With no faces.tflite yet, the library's first change (an enrolment, a visitor named, a face
corrected) starts from models/backbone.tflite (made once by `python -m convert backbone`, on
the Pi or copied from a PC): it embeds the photos, and its commit installs a copy of the
backbone as faces.tflite beside faces.json and the store. The head is the store's (numpy).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from edge.config import Config, RecognizeConfig
from edge.errors import ModelError
from edge.facestore import FaceStore
from edge.hashing import file_hash
from edge.head import N_AUG
from edge.library.embed import Embedder
from edge.library.files import temp_beside
from edge.library.generation import State
from edge.recognize import UNKNOWN, FaceModel, Identity
from edge.tflite import load_interpreter

log = logging.getLogger("edge.library")

BACKBONE = "backbone.tflite"
INPUT_SIZE = 160  # FaceNet's, the backbone `convert backbone` makes (checked in backbone.json)
# One or two people leave nobody to calibrate against: these limits hold until calibration
# takes over (3+ people with 3+ distinct photos, edge/library/thresholds.py). Measured on
# ../shared/data's tuning split (bench/first_model.py, docs/pi-only.md).
FIRST_MAX_DISTANCE = 0.40
FIRST_MIN_PROBABILITY = 0.50
HOW = (
    "make it once with `./setup.sh --convert && .venv/bin/python -m convert backbone` "
    "(or copy models/backbone.tflite and backbone.json from a PC)"
)


def find_backbone(model: Path) -> Path:
    """backbone.tflite beside the model; ModelError (saying how to make it) if there is none."""
    if not model.name:  # Path("") is "."
        raise ModelError("no face model configured (recognize.model is empty)")
    path = model.with_name(BACKBONE)
    if not path.is_file():
        raise ModelError(f"{model}: no face model yet, and no {path.name} beside it: {HOW}")
    return path


def read_backbone(path: Path) -> dict:
    """backbone.json, checked against the file's hash; ModelError (one line) otherwise."""
    meta_file = path.with_suffix(".json")
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise ModelError(f"{meta_file}: missing beside {path.name}: {HOW}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{meta_file}: not readable ({exc})") from None
    need = {"sha256", "input_size", "embedding_size", "outputs"}
    if not isinstance(meta, dict) or not need <= meta.keys():
        raise ModelError(
            f"{meta_file}: not a backbone description (needs {', '.join(sorted(need))})"
        )
    if int(meta["input_size"]) != INPUT_SIZE:
        raise ModelError(f"{meta_file}: input_size {meta['input_size']}, expected {INPUT_SIZE}")
    if file_hash(path) != meta["sha256"]:
        raise ModelError(f"{path}: its sha256 differs from {meta_file.name}: damaged? {HOW}")
    return meta


class NobodyYet(FaceModel):
    """The bare backbone before anyone is enrolled: it embeds every face and names nobody, so
    the loop tells unknown visitors apart and keeps their aligned crops, to be named."""

    def identify(self, crop_bgr: np.ndarray) -> Identity:
        emb, _ = self.infer(crop_bgr)
        return Identity(UNKNOWN, 0.0, 0.0, 1.0, emb)

    def closest(self, embedding: np.ndarray | None) -> tuple[str, float] | None:
        return None


def bare_model(rcfg: RecognizeConfig, backbone: Path) -> NobodyYet:
    """The backbone as a model of nobody (its constant probability output is not used)."""
    meta = read_backbone(backbone)
    return NobodyYet(
        load_interpreter(backbone, rcfg.threads),
        {**meta, "labels": [], "centroids": [], "thresholds": first_thresholds()},
        rcfg,
        backbone,
    )


def embedder(cfg: Config, backbone: Path) -> Embedder:
    """The embedder on the bare backbone."""
    return Embedder(cfg, backbone, bare_model(cfg.recognize, backbone))


def first_thresholds() -> dict:
    base = {
        "min_probability": FIRST_MIN_PROBABILITY,
        "max_distance": FIRST_MAX_DISTANCE,
        "from": "first model on the device (measured defaults)",
    }
    return {
        "min_probability": FIRST_MIN_PROBABILITY,
        "max_distance": FIRST_MAX_DISTANCE,
        "rule": "named when probability >= min_probability and cosine distance to the centroid <= max_distance",
        "baseline": base,
    }


def empty_state(model: Path, backbone: Path) -> State:
    """Generation 0 of a model made here: no people, the backbone's description."""
    bb = read_backbone(backbone)
    meta = {
        "format": 1,
        "labels": [],
        "input_size": int(bb["input_size"]),
        "input": bb.get("input", ""),
        "normalization": bb.get("normalization", ""),
        "backbone": bb.get("backbone", ""),
        "embedding_size": int(bb["embedding_size"]),
        "outputs": bb["outputs"],
        "thresholds": first_thresholds(),
        "made_from": {"backbone": backbone.name, "sha256": bb["sha256"]},
    }
    d = int(bb["embedding_size"])
    store = FaceStore([], np.zeros((0, N_AUG, d), np.float32), np.zeros(0, int), [], [])
    return State(model, meta, store, {})


def model_copy(model: Path, backbone: Path) -> Path:
    """A copy of the backbone beside the model, for the first commit to install as the model."""
    tmp = temp_beside(model)  # a crash's leftover is removed by recover()
    shutil.copyfile(backbone, tmp)
    tmp.chmod(0o644)
    log.info("first face model: starting from %s", backbone)
    return tmp
