"""Where the project, its models and the shared test data are (no pytest needed)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()


def copy_model(model: Path, models: Path) -> Path:
    """A copy of a trained model (the .tflite, its .json and its embedding store) in `models`,
    made if missing; the copy's .tflite."""
    models.mkdir(parents=True, exist_ok=True)
    meta = json.loads(model.with_suffix(".json").read_text())
    for name in (model.name, model.with_suffix(".json").name, meta["store"]):
        shutil.copyfile(model.with_name(name), models / name)
    return models / model.name
