"""The face model from `python -m convert train`: aligned crop -> embedding + class probabilities.

faces.tflite (uint8 RGB crop in; embedding and probabilities out) with faces.json beside it
(labels, input size, thresholds, class centroids). A face is named only when the top
probability >= min_probability and the cosine distance to that person's centroid <= max_distance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import RecognizeConfig
from edge.errors import ModelError
from edge.head import softmax
from edge.tflite import load_interpreter
from edge.vectors import cosine_distance

UNKNOWN = "unknown"


@dataclass
class Identity:
    """The decision for one crop; `name` is "unknown" when rejected."""

    name: str
    confidence: float  # the top class probability (also for "unknown")
    probability: float
    distance: float  # cosine distance to the top class's centroid
    embedding: np.ndarray


def labels_path(model_path: str | Path) -> Path:
    """faces.json beside faces.tflite."""
    return Path(model_path).with_suffix(".json")


class FaceModel:
    """A loaded, checked face model; infer() / identify() on aligned BGR crops."""

    def __init__(
        self,
        interpreter: Any,
        meta: dict,
        rcfg: RecognizeConfig,
        path: Path,
        head: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.path = path
        self.meta = meta
        self.labels: list[str] = list(meta["labels"])
        self.input_size: int = int(meta["input_size"])
        self.centroids = np.asarray(meta["centroids"], np.float32)
        th = meta["thresholds"]
        self.min_probability = (
            rcfg.min_probability if rcfg.min_probability >= 0 else float(th["min_probability"])
        )
        self.max_distance = (
            rcfg.max_distance if rcfg.max_distance >= 0 else float(th["max_distance"])
        )
        self._interp = interpreter
        self._input = interpreter.get_input_details()[0]
        outs = {d["index"]: d for d in interpreter.get_output_details()}
        self._emb_out = outs[int(meta["outputs"]["embedding"])]
        self._prob_out = outs[int(meta["outputs"]["probabilities"])]
        self.head = head  # (weights, bias) refit by `edge enroll`, replacing the model's own

    @property
    def store_path(self) -> Path | None:
        """The embedding store beside the model (faces.store-*.npz), if it has one."""
        name = self.meta.get("store")
        return self.path.with_name(name) if name else None

    @classmethod
    def load(cls, path: str | Path, rcfg: RecognizeConfig) -> FaceModel:
        """Load and check the model and its labels; ModelError (one line) when they don't fit."""
        if str(path) in ("", "."):
            raise ModelError("no face model configured (recognize.model is empty)")
        path = Path(path)
        if not path.is_file():
            raise ModelError(
                f"{path}: face model not found (train one with `python -m convert train DATASET`)"
            )
        meta = _read_meta(labels_path(path))
        interpreter = load_interpreter(path, rcfg.threads)
        head = None
        if meta.get("head") == "store":  # refit on the device: the store holds the head
            from edge.facestore import load_head

            head = load_head(path.with_name(str(meta.get("store", ""))))
            if head is None:
                raise ModelError(
                    f"{path.with_suffix('.json')}: its store {meta.get('store')} has no head"
                )
        _check_shapes(path, interpreter, meta, head)
        return cls(interpreter, meta, rcfg, path, head)

    def infer(self, crop_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(embedding float32 L2-normalized, class probabilities) of one aligned crop."""
        s = self.input_size
        if crop_bgr.shape[:2] != (s, s):
            crop_bgr = cv2.resize(crop_bgr, (s, s), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
        emb, probs = run_face_model(self._interp, self._input, self._emb_out, self._prob_out, rgb)
        if self.head is not None:
            probs = softmax((emb @ self.head[0] + self.head[1])[None])[0]
        return emb, probs

    def identify(self, crop_bgr: np.ndarray) -> Identity:
        """Name the crop, or "unknown" when either rejection rule fires."""
        emb, probs = self.infer(crop_bgr)
        best = int(np.argmax(probs))
        prob = float(probs[best])
        dist = float(cosine_distance(emb, self.centroids[best]))
        ok = prob >= self.min_probability and dist <= self.max_distance
        return Identity(self.labels[best] if ok else UNKNOWN, prob, prob, dist, emb)

    def closest(self, embedding: np.ndarray | None) -> tuple[str, float] | None:
        """(name, cosine distance) of the nearest person's centroid; None without a usable embedding."""
        if embedding is None or np.shape(embedding) != self.centroids.shape[1:]:
            return None
        dist = cosine_distance(self.centroids, embedding)
        best = int(np.argmin(dist))
        return self.labels[best], float(dist[best])


def run_face_model(
    interp: Any, inp: dict, emb_out: dict, prob_out: dict, rgb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One RGB crop at the input size through the model: (L2-normalized embedding, probabilities)."""
    scale, zero = inp["quantization"]
    dtype = inp["dtype"]
    if dtype == np.float32:
        x = rgb.astype(np.float32)
    elif scale and (abs(scale - 1.0) > 1e-6 or zero != 0):
        info = np.iinfo(dtype)
        x = np.clip(np.round(rgb / scale + zero), info.min, info.max).astype(dtype)
    else:
        x = rgb.astype(dtype)
    interp.set_tensor(inp["index"], x[None])
    interp.invoke()
    emb = _dequant(interp, emb_out)
    probs = _dequant(interp, prob_out)
    emb /= max(float(np.linalg.norm(emb)), 1e-12)
    return emb, probs


def _dequant(interp: Any, detail: dict) -> np.ndarray:
    v = interp.get_tensor(detail["index"]).reshape(-1).astype(np.float32)
    scale, zero = detail["quantization"]
    return (v - zero) * scale if scale else v


def _read_meta(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(
            f"{path}: labels file missing (it is written beside the .tflite by convert)"
        )
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None
    need = ("labels", "input_size", "thresholds", "centroids", "outputs")
    missing = [k for k in need if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ModelError(
            f"{path}: missing key(s) {', '.join(missing)}; re-run `python -m convert train`"
        )
    labels = meta["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise ModelError(f"{path}: `labels` must be a non-empty list of names")
    try:
        th = meta["thresholds"]
        float(th["min_probability"]), float(th["max_distance"])
        (
            int(meta["input_size"]),
            int(meta["outputs"]["embedding"]),
            int(meta["outputs"]["probabilities"]),
        )
        centroids = np.asarray(meta["centroids"], np.float32)
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(
            f"{path}: malformed thresholds/input_size/outputs/centroids ({exc})"
        ) from None
    if centroids.ndim != 2 or len(centroids) != len(labels):
        raise ModelError(f"{path}: {len(labels)} labels but centroids of shape {centroids.shape}")
    return meta


def _check_shapes(path: Path, interp: Any, meta: dict, head: tuple | None) -> None:
    n, s = len(meta["labels"]), int(meta["input_size"])
    d = len(meta["centroids"][0])
    if head is not None and (head[0].shape != (d, n) or head[1].shape != (n,)):
        raise ModelError(
            f"{path}: the head in {meta['store']} is {head[0].shape}, not ({d}, {n}): "
            "model and store are from different trainings"
        )
    inputs = interp.get_input_details()
    if len(inputs) != 1 or [int(v) for v in inputs[0]["shape"]] != [1, s, s, 3]:
        got = [list(map(int, i["shape"])) for i in inputs]
        raise ModelError(f"{path}: input shape {got} does not match input_size {s} in faces.json")
    outs = {int(o["index"]): int(np.prod(o["shape"])) for o in interp.get_output_details()}
    e, p = int(meta["outputs"]["embedding"]), int(meta["outputs"]["probabilities"])
    if outs.get(e) != d or (head is None and outs.get(p) != n):
        raise ModelError(
            f"{path}: outputs {sorted(outs.values())} do not match faces.json "
            f"({n} labels, {d}-d embedding): model and labels are from different trainings"
        )
