"""Shared fixtures: where the real data and models are, and how to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()


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


def run_edge(
    *args: str, timeout: float = 300, env: dict | None = None, **kw
) -> subprocess.CompletedProcess:
    """Run `python -m edge ARGS` from the project root and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )
