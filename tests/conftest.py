"""Shared fixtures: where the real data and models are, and how to run the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import DATA, MODELS, ROOT, copy_model


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(
            f"{what} not found at {path} (set EDGE_TEST_DATA or run ./setup.sh --test-deps)"
        )
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $EDGE_TEST_DATA); skips with a reason where it is absent."""
    return _need(DATA, "test data")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """models/ as filled by setup.sh."""
    return _need(MODELS / "res10_300x300_ssd_iter_140000.caffemodel", "model files").parent


def _run_module(
    module: str, args: tuple[str, ...], timeout: float, env: dict | None, **kw
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )


def run_edge(
    *args: str, timeout: float = 300, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    """Run `python -m edge ARGS` from the project root and capture its output."""
    return _run_module("edge", args, timeout, env, **kw)


def run_convert(
    *args: str, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m convert ARGS` from the project root (TensorFlow's chatter quietened)."""
    return _run_module("convert", args, timeout, {"TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})


def _trained_model_key(faces_dir: Path) -> str:
    """Hash of the code and data a trained test model depends on."""
    import hashlib

    from tests.splits import known, train_photos

    h = hashlib.sha256()
    from edge.config import DetectConfig

    h.update(repr(DetectConfig()).encode())  # detector defaults shape the crops
    train_files = ("backbone", "cli_train", "dataset", "export", "train")
    code = [ROOT / "convert" / f"{n}.py" for n in train_files]
    code += sorted((ROOT / "edge" / "detectors").glob("*.py"))
    code += [ROOT / "edge" / n for n in ("align.py", "detect.py", "head.py", "images.py")]
    code += sorted((ROOT / "edge" / "library").glob("*.py"))  # installs it: thresholds, slugs
    for path in code:
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    for name in known(faces_dir):
        for photo in train_photos(faces_dir, name):
            h.update(f"{name}/{photo.name}:{photo.stat().st_size}\n".encode())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def trained_model(data_dir: Path, models_dir: Path, tmp_path_factory) -> Path:
    """faces.tflite (faces.json beside it) trained by `python -m convert train` on the 7 known
    people's training photos (tests/splits.py). Cached across runs in ~/.cache/edge-faces-tests,
    keyed by the convert/align/detect code and the photo list."""

    from tests.splits import make_train_dataset

    pytest.importorskip("tensorflow", reason="convert needs tensorflow (setup.sh --convert)")
    faces = data_dir / "faces"
    cache_root = Path(
        os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-faces-tests")
    )
    final = cache_root / f"model-{_trained_model_key(faces)}"
    if (final / "faces.tflite").is_file() and (final / "faces.json").is_file():
        return final / "faces.tflite"
    work = tmp_path_factory.mktemp("trained_model")
    dataset = make_train_dataset(faces, work / "dataset")
    out = work / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "convert",
            "train",
            str(dataset),
            "--out",
            str(out),
            "--cache",
            str(work / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"convert train failed:\n{proc.stderr[-3000:]}"
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = cache_root / f".{final.name}.{os.getpid()}"
    shutil.copytree(out, staging, dirs_exist_ok=True)
    try:
        staging.rename(final)
    except OSError:  # another run got there first
        shutil.rmtree(staging, ignore_errors=True)
    return final / "faces.tflite"


@pytest.fixture
def device(trained_model: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the 7-person test model (with its store) and a config keeping photos in tmp."""
    models = tmp_path / "models"
    copy_model(trained_model, models)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"recognize:\n  model: {models / 'faces.tflite'}\n  watch_s: 0.2\n"
        f"enroll:\n  dataset: {tmp_path / 'dataset'}\n"
        f"unknown_faces:\n  dir: {tmp_path / 'unknown'}\n"
        f"history:\n  path: {tmp_path / 'history' / 'events.db'}\n"
    )  # every path in tmp: tests run side by side
    return models / "faces.tflite", config
