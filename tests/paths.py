"""Where the project, its models and the shared test data are (no pytest needed)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()
