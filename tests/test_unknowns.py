"""Unknown-face store: private file modes, count and size caps, disk full."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import subprocess

import numpy as np
import pytest

from edge.config import UnknownFacesConfig
from edge.images import read_image
from edge.unknowns import UnknownStore, load_capture


@pytest.fixture(scope="module")
def crop(data_dir):
    return read_image(
        data_dir / "faces" / "Tony_Blair" / sorted(os.listdir(data_dir / "faces" / "Tony_Blair"))[0]
    )


def _store(tmp_path, **kw) -> UnknownStore:
    return UnknownStore(
        dataclasses.replace(UnknownFacesConfig(), dir=str(tmp_path / "unknown"), **kw)
    )


def test_saves_private_files_with_metadata(tmp_path, crop):
    store = _store(tmp_path)
    emb = np.linspace(-1, 1, 512, dtype=np.float32)
    jpg = store.save(crop, emb, track=7, name="unknown", confidence=0.31, when=1_700_000_000.5)
    assert jpg is not None and jpg.exists()
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    files = sorted(store.dir.iterdir())
    assert [f.suffix for f in files] == [".jpg", ".json", ".npy"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    meta, loaded = load_capture(jpg.with_suffix(".json"))
    assert meta["track"] == 7 and meta["name"] == "unknown" and meta["confidence"] == 0.31
    np.testing.assert_array_equal(loaded, emb)
    assert read_image(jpg).shape == crop.shape


def test_known_faces_not_stored_unless_configured(tmp_path, crop):
    assert _store(tmp_path).save(crop, None, track=1, name="Tony_Blair", confidence=0.9) is None
    assert not (tmp_path / "unknown").exists()
    store = _store(tmp_path, save_known=True)
    assert store.save(crop, None, track=1, name="Tony_Blair", confidence=0.9) is not None


def test_count_cap_removes_oldest_first(tmp_path, crop):
    store = _store(tmp_path, max_files=3)
    for i in range(5):
        store.save(
            crop,
            np.zeros(4, np.float32),
            track=i,
            name="unknown",
            confidence=0.1,
            when=1_700_000_000 + i,
        )
    jpgs = sorted(p.name for p in store.dir.glob("*.jpg"))
    assert len(jpgs) == 3
    assert [j.split("-t")[1] for j in jpgs] == ["2.jpg", "3.jpg", "4.jpg"]
    assert len(list(store.dir.iterdir())) == 9


def test_size_cap(tmp_path, crop):
    one = _store(tmp_path / "probe")
    one.save(crop, None, track=0, name="unknown", confidence=0.1)
    per_capture = sum(p.stat().st_size for p in one.dir.iterdir())
    store = _store(tmp_path, max_mb=2.5 * per_capture / 1024 / 1024)
    for i in range(6):
        store.save(crop, None, track=i, name="unknown", confidence=0.1, when=1_700_000_000 + i)
    total = sum(p.stat().st_size for p in store.dir.iterdir())
    assert total <= 2.5 * per_capture
    assert len(list(store.dir.glob("*.jpg"))) == 2


def test_disk_full_logs_once_and_recovers(tmp_path, crop, caplog):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a tiny tmpfs")
    try:
        store = UnknownStore(dataclasses.replace(UnknownFacesConfig(), dir=str(mount / "u")))
        big = np.random.default_rng(0).integers(
            0, 255, (400, 400, 3), dtype=np.uint8
        )  # ~150 KB JPEG
        with caplog.at_level(logging.ERROR, logger="edge.unknowns"):
            for i in range(3):
                assert store.save(big, None, track=i, name="unknown", confidence=0.1) is None
        assert store.failed == 3
        assert sum("disk full" in r.message for r in caplog.records) == 1
        assert list((mount / "u").iterdir()) == []  # no partial files left
        assert store.save(crop[:60, :60], None, track=9, name="unknown", confidence=0.1) is not None
    finally:
        subprocess.run(["umount", str(mount)], check=False)
