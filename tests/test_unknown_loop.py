"""The edge loop collects unknown visitors' crops on a doorbell clip; `convert cluster` groups them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_edge
from tests.doorbell import make_clip
from tests.splits import people, photos


@pytest.mark.slow
def test_edge_collects_unknown_visitors(
    data_dir: Path, trained_model: Path, tmp_path: Path
) -> None:
    timeline = make_clip(data_dir, tmp_path / "clip", visits=5, seed=3)
    visitors = {v["person"] for v in timeline["visits"]}
    assert any(not v["known"] for v in timeline["visits"])
    unknown_dir = tmp_path / "private" / "unknown_faces"
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"recognize:\n  model: {trained_model}\n"
        f"unknown_faces:\n  enabled: true\n  dir: {unknown_dir}\n  save_known: false\n"
    )
    proc = run_edge(
        "--config", str(config), "--source", str(tmp_path / "clip" / "clip.mp4"),
        "--sink", "stdout", "--every-frame", timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    n_unknown = sum(e["type"] == "unknown" for e in events)
    assert n_unknown >= 1

    # A few different crops per unknown visit, under that visit's id; nothing of recognized
    # people; private files.
    metas = sorted(unknown_dir.glob("*.json"))
    visits = {e["visit"] for e in events if e["type"] == "unknown"}
    per_visit = Counter(json.loads(m.read_text())["visit"] for m in metas)
    assert set(per_visit) == visits
    assert all(1 <= n <= 4 for n in per_visit.values()), per_visit
    assert max(per_visit.values()) >= 2, per_visit  # one visit gives several crops
    assert stat.S_IMODE(unknown_dir.stat().st_mode) == 0o700
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        assert meta["name"] == "unknown" and set(meta) >= {"time", "track", "visit", "confidence"}
        for name in (meta_path.name, meta["image"], meta["embedding"]):
            assert stat.S_IMODE((unknown_dir / name).stat().st_mode) == 0o600

    # Each capture shows someone who came to the door (nearest person by mean embedding).
    from edge.config import load_config
    from edge.images import read_image
    from edge.stills import StillRecognizer

    recognizer = StillRecognizer(load_config(None, {}), str(trained_model))
    faces = data_dir / "faces"
    means = {}
    for name in people(faces):
        embs = [recognizer(read_image(p)) for p in photos(faces, name)[:5]]
        v = np.mean(
            [max(e, key=lambda f: f.face.box[2] * f.face.box[3]).embedding for e in embs if e], 0
        )
        means[name] = v / np.linalg.norm(v)
    for meta_path in metas:
        emb = np.load(unknown_dir / json.loads(meta_path.read_text())["embedding"]).ravel()
        nearest = max(means, key=lambda n: float(emb @ means[n]))
        assert nearest in visitors, (meta_path.name, nearest, visitors)

    out = tmp_path / "clusters"
    proc = subprocess.run(
        [sys.executable, "-m", "convert", "cluster", str(unknown_dir), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["faces"] == len(metas)
    assert summary["clusters"] + summary["unclustered"] >= 1
    assert sum(summary["sizes"].values()) == len(metas)
