"""Odd and hostile files met by the dataset crawl, image reading and `detect`/`identify`:
link loops, FIFOs, huge images, non-UTF-8 names, confusable person names, a broken cache."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

from convert.dataset import CropCache, crawl
from edge.errors import UserError
from edge.images import read_image
from tests.conftest import run_edge
from tests.odd_files import huge_png, latin1_name, odd_files
from tests.splits import known, photos


def _tree(data_dir: Path, root: Path, people: int = 3, each: int = 3) -> list[str]:
    faces = data_dir / "faces"
    names = known(faces)[:people]
    for name in names:
        (root / name).mkdir(parents=True)
        for photo in photos(faces, name)[:each]:
            (root / name / photo.name).symlink_to(photo)
    return names


def test_folder_link_loop_does_not_relabel_people(data_dir, tmp_path):
    """dataset/<A>/up -> .. used to file every other person's photos under A."""
    root = tmp_path / "dataset"
    a, b, c = _tree(data_dir, root)
    (root / a / "up").symlink_to("..")
    (root / b / "elsewhere").symlink_to(data_dir / "faces")
    found, skipped = crawl(root)
    labels = {path.parent.name: label for path, label in found}
    assert labels == {a: a, b: b, c: c}
    assert len(found) == 9
    reasons = dict(skipped)
    assert "link to a folder already in the dataset" in reasons[root / a / "up"]
    assert "link to a folder outside the dataset" in reasons[root / b / "elsewhere"]


def test_person_names_that_would_confuse(tmp_path):
    """alice/Alice, 'unknown', a leading space, a hidden folder, a Latin-1 name: each said."""
    root = tmp_path / "dataset"
    for name in ("alice", "Alice", "unknown", " Bob", "..hidden", "Carol", "_unknown"):
        (root / name).mkdir(parents=True)
        (root / name / "1.jpg").write_bytes(b"x")
    latin = latin1_name(root, b"Ren\xe9", "")
    latin.mkdir()
    (latin / "1.jpg").write_bytes(b"x")
    (root / ".cache").mkdir()  # the crop cache's home: not a person, not worth a line
    found, skipped = crawl(root)
    assert sorted({label for _, label in found}, key=str) == ["Carol", None]
    reasons = dict(skipped)
    assert "differ only in case" in reasons[root / "alice"]
    assert "differ only in case" in reasons[root / "Alice"]
    assert "reserved for strangers" in reasons[root / "unknown"]
    assert "starts or ends with a space" in reasons[root / " Bob"]
    assert "hidden folder" in reasons[root / "..hidden"]
    assert "not valid UTF-8" in reasons[latin]
    assert root / ".cache" not in reasons
    assert len(skipped) == 6


def test_special_files_in_a_dataset_are_skipped(tmp_path):
    root = tmp_path / "dataset"
    odd = odd_files(root / "Alice")
    found, skipped = crawl(root)
    assert found == []
    reasons = dict(skipped)
    assert reasons[odd["fifo"]] == "not a regular file (a named pipe, device or socket)"
    assert reasons[odd["loop"]].startswith("unreadable (Too many levels of symbolic links")


def test_huge_image_is_refused_from_its_header(tmp_path):
    png = huge_png(tmp_path / "huge.png")
    assert png.stat().st_size < 2_000_000
    with pytest.raises(UserError) as err:
        read_image(png)
    assert str(err.value).startswith(f"{png}: 20000x20000 pixels is more than the 50 million")


def test_detect_goes_on_past_a_fifo_a_loop_and_a_huge_image(data_dir, tmp_path, models_dir):
    """`identify` shares this per-image loop with `detect`."""
    folder = tmp_path / "photos"
    odd = odd_files(folder)
    huge_png(folder / "huge.png")
    good = shutil.copy(photos(data_dir / "faces", known(data_dir / "faces")[0])[0], folder)
    proc = run_edge("detect", str(folder), timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(good)]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and all(str(folder) in e for e in errors), proc.stderr
    assert f"{odd['fifo']}: not a regular file" in proc.stderr
    assert f"{odd['loop']}: unreadable (Too many levels of symbolic links)" in proc.stderr
    assert "huge.png: 20000x20000 pixels" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def open_folder():
    """A folder in /tmp that any user can enter (pytest's tmp_path is root's own)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_unreadable_photo_is_one_line(open_folder):
    """A photo without read permission; read as `nobody` when the tests run as root (root
    reads any file), in a forked child."""
    photo = open_folder / "secret.jpg"
    photo.write_bytes(b"\xff\xd8\xff")
    photo.chmod(0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                read_image(photo)
                said = "read it"
            except UserError as exc:
                said = f"UserError: {exc}"
            except Exception as exc:
                said = f"{type(exc).__name__}: {exc}"
            os.write(write, said.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    os.waitpid(pid, 0)
    assert said == f"UserError: {photo}: unreadable (Permission denied)"


def test_truncated_cache_entry_is_recomputed(tmp_path, caplog):
    cache = CropCache(tmp_path / "cache")
    cache.put("emb", "ab12", emb=np.ones((2, 4), np.float32))
    path = tmp_path / "cache" / "emb" / "ab" / "ab12.npz"
    path.write_bytes(path.read_bytes()[:40])
    assert cache.get("emb", "ab12") is None
    assert "unreadable cache entry, recomputing" in caplog.text


def test_crop_cache_is_private(tmp_path):
    old = os.umask(0o022)  # what most desktops use: new files would be world-readable
    try:
        CropCache(tmp_path / "cache").put("crops", "cd34", crop=np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    for path in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_identify_goes_on_past_odd_files(data_dir, tmp_path, trained_model):
    """A FIFO, a link loop and a huge PNG are one line each; a Latin-1 name is identified."""
    folder = tmp_path / "photos"
    odd = odd_files(folder)
    huge_png(folder / "huge.png")
    photo = photos(data_dir / "faces", known(data_dir / "faces")[0])[0]
    shutil.copy(photo, folder / "good.jpg")
    shutil.copy(photo, latin1_name(folder))
    proc = run_edge("identify", str(folder), "--model", str(trained_model), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    shown = [json.loads(line)["image"] for line in proc.stdout.splitlines()]
    assert shown == [str(latin1_name(folder)), str(folder / "good.jpg")]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3 and all(str(folder) in e for e in errors), proc.stderr
    assert f"{odd['fifo']}: not a regular file" in proc.stderr
    assert f"{odd['loop']}: unreadable (Too many levels of symbolic links)" in proc.stderr
    assert "huge.png: 20000x20000 pixels" in proc.stderr
