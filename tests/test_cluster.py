"""`convert cluster`: unknown captures (and plain photos) grouped by identity into folders."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from functools import partial
from pathlib import Path

import cv2
import pytest

from tests.conftest import run_convert
from tests.splits import known, photos, strangers

convert = partial(run_convert, timeout=300)


def _people(data_dir: Path) -> list[str]:
    """Two strangers and one known person (treated as unknown: the camera missed them)."""
    faces = data_dir / "faces"
    return [*strangers(data_dir / "faces")[:2], known(faces)[0]]


@pytest.fixture(scope="module")
def captures(data_dir: Path, trained_model: Path, tmp_path_factory) -> tuple[Path, dict[int, str]]:
    """An unknown-faces folder written by the edge's UnknownStore: 4 visits each of 3 people."""
    from edge.config import load_config
    from edge.images import read_image
    from edge.stills import StillRecognizer
    from edge.unknowns import UnknownStore

    folder = tmp_path_factory.mktemp("captures") / "unknown_faces"
    cfg = load_config(None, {"unknown_faces.dir": str(folder)})
    recognizer = StillRecognizer(cfg, str(trained_model))
    store = UnknownStore(cfg.unknown_faces)
    who: dict[int, str] = {}
    for p, name in enumerate(_people(data_dir)):
        for i, photo in enumerate(photos(data_dir / "faces", name)[:4]):
            found = recognizer(read_image(photo))
            face = max(found, key=lambda f: f.face.box[2] * f.face.box[3])  # LFW: the centre one
            track = 10 * p + i
            who[track] = name
            saved = store.save(
                face.crop, face.embedding, track=track, name="unknown", confidence=0.3
            )
            assert saved is not None
    return folder, who


def _track(path: Path) -> int:
    return int(re.search(r"-t(\d+)\.jpg$", path.name).group(1))


def test_cluster_captures(captures, tmp_path: Path) -> None:
    folder, who = captures
    out = tmp_path / "clusters"
    proc = convert("cluster", str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["faces"] == 12 and summary["clusters"] == 3 and summary["unclustered"] == 0
    seen = set()
    for i in range(1, 4):
        name = f"cluster_{i:03d}"
        files = sorted((out / name).iterdir())
        assert all(f.suffix == ".jpg" for f in files)  # a renamed folder holds faces only
        people = {who[_track(f)] for f in files}
        assert len(people) == 1, f"{name} mixes {people}"
        seen |= people
        sheet = cv2.imread(str(out / f"{name}.jpg"))
        assert sheet is not None and sheet.shape[0] >= 112
        assert summary["sizes"][name] == len(files) == 4
    assert seen == set(who.values())
    for path in [out, *out.rglob("*")]:  # faces: private whatever the umask
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

    # One page shows every cluster, every crop, and when each was captured.
    page = Path(summary["overview"]).read_text()
    assert Path(summary["overview"]) == out / "overview.html"
    assert page.count("<img ") == 12
    for i in range(1, 4):
        assert f"cluster_{i:03d}/ (4 faces, " in page
    for meta in folder.glob("*.json"):
        when = datetime.fromtimestamp(json.loads(meta.read_text())["time"])
        assert when.strftime("%Y-%m-%d %H:%M:%S") in page

    # The folders, renamed, are a usable dataset: each crop shows one face convert finds.
    from convert.dataset import CropCache, load_dataset
    from edge.config import load_config

    dataset = tmp_path / "dataset"
    for i in range(1, 4):
        shutil.copytree(out / f"cluster_{i:03d}", dataset / f"person{i}")
    ds = load_dataset(dataset, load_config(None, {}).detect, 160, CropCache(tmp_path / "cache"))
    assert len(ds.samples) == 12, ds.skipped

    again = convert("cluster", str(folder), "--out", str(out))
    assert again.returncode == 2 and "already holds clusters" in again.stderr


def test_cluster_distance_trades_merges_for_splits(captures, tmp_path: Path) -> None:
    folder, _ = captures
    tight = json.loads(convert("cluster", str(folder), "--out", str(tmp_path / "a"),
                               "--distance", "0.05").stdout)  # fmt: skip
    loose = json.loads(convert("cluster", str(folder), "--out", str(tmp_path / "b"),
                               "--distance", "1.5").stdout)  # fmt: skip
    assert tight["clusters"] + tight["unclustered"] > 3  # nearly every crop alone
    assert loose["clusters"] == 1  # everyone merged


def test_cluster_plain_photos(data_dir: Path, trained_model: Path, tmp_path: Path) -> None:
    """A folder of photos (no captures): faces are detected and embedded with the model."""
    src = tmp_path / "photos"
    src.mkdir()
    truth = {}
    for name in _people(data_dir)[:2]:
        for photo in photos(data_dir / "faces", name)[-3:]:
            shutil.copy2(photo, src / photo.name)
            truth[photo.name] = name
    shutil.copy2(data_dir / "no_face" / "moon.png", src / "moon.png")
    proc = convert(
        "cluster", str(src), "--out", str(tmp_path / "out"), "--model", str(trained_model)
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["clusters"] == 2
    assert "moon.png: skipped (no face found)" in proc.stderr
    for i in (1, 2):
        names = {truth[f.name] for f in (tmp_path / "out" / f"cluster_{i:03d}").iterdir()}
        assert len(names) == 1


def test_cluster_bad_input(trained_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (
        ("cluster", str(tmp_path / "nope")),
        ("cluster", str(empty), "--model", str(trained_model)),
        ("cluster", str(empty), "--distance", "abc"),
    ):
        proc = convert(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [
            ln for ln in proc.stderr.splitlines() if not ln.startswith("INFO: Created TensorF")
        ]
        assert len(lines) == 1 and "error: " in lines[0] and proc.stdout == "", lines


def test_purity() -> None:
    import numpy as np

    from convert.cluster import purity

    labels = np.array([0, 0, 0, 1, 1, -1])
    assert purity(labels, ["a", "a", "b", "c", "c", "d"]) == pytest.approx(4 / 5)
    assert purity(np.array([-1, -1]), ["a", "b"]) == 0.0
