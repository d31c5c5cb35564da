"""`convert scan` / `convert find`: index real photos, resume, find the right ones."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, run_convert
from tests.splits import known, photos, train_photos

convert = partial(run_convert, timeout=300)


@pytest.fixture(scope="module")
def library(data_dir: Path, tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    """A small photo tree: 3 photos each of 3 known people (training photos, so the names are
    certain; how well unseen photos are named is bench/library.py's job) and 2 without faces."""
    root = tmp_path_factory.mktemp("library")
    faces = data_dir / "faces"
    who = {name: train_photos(faces, name)[:3] for name in known(faces)[:3]}
    placed: dict[str, list[Path]] = {}
    for i, (name, files) in enumerate(who.items()):
        folder = root / f"album{i}" / "sub"
        folder.mkdir(parents=True)
        placed[name] = [Path(shutil.copy2(f, folder / f.name)).resolve() for f in files]
    (root / "misc").mkdir()
    for name in ("coffee.png", "moon.png"):
        shutil.copy2(data_dir / "no_face" / name, root / "misc" / name)
    (root / "misc" / "notes.txt").write_text("not a photo")
    return root, placed


def _scan(root: Path, index: Path, model: Path, *extra: str) -> dict:
    proc = convert("scan", str(root), "--index", str(index), "--model", str(model), *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _find(name: str, index: Path, *extra: str) -> list[Path]:
    proc = convert("find", name, "--index", str(index), *extra)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [Path(line) for line in proc.stdout.splitlines()]


def test_scan_find_and_rescan(library, trained_model: Path, tmp_path: Path) -> None:
    root, placed = library
    index = tmp_path / "index.db"
    first = _scan(root, index, trained_model, "--jobs", "2")
    assert first["found"] == 11 and first["scanned"] == 11 and first["skipped"] == 0
    assert first["faces"] >= 9 and not first["interrupted"]

    a, b, c = placed
    for name in (a, b, c):
        assert sorted(_find(name, index)) == sorted(placed[name])
    assert _find(a.lower().replace("_", " "), index) == _find(a, index)  # spelling-insensitive

    page = tmp_path / "a.html"
    assert len(_find(a, index, "--html", str(page))) == 3
    assert page.read_text().count('<img src="data:image/jpeg;base64,') == 3

    # Unchanged photos are skipped; a changed one is scanned again, a deleted one forgotten.
    again = _scan(root, index, trained_model)
    assert again["scanned"] == 0 and again["skipped"] == 11
    changed, gone = placed[a][0], placed[a][1]
    shutil.copy2(placed[b][0], changed)  # now shows person b
    gone.unlink()
    third = _scan(root, index, trained_model)
    assert (third["scanned"], third["skipped"], third["removed"]) == (1, 9, 1)
    assert sorted(_find(a, index)) == [placed[a][2]]
    assert changed in _find(b, index)
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == 10


def test_find_newest_first(library, trained_model: Path, tmp_path: Path) -> None:
    root, placed = library
    a = next(iter(placed))
    index = tmp_path / "index.db"
    _scan(root, index, trained_model)
    ordered = _find(a, index)
    mtimes = [p.stat().st_mtime for p in ordered]
    assert mtimes == sorted(mtimes, reverse=True)


def test_default_index_and_paths_as_scanned(library, trained_model: Path, tmp_path: Path) -> None:
    """No --index: one per user under XDG_DATA_HOME; find prints the path given, not the target."""
    root, placed = library
    link = tmp_path / "nas"
    link.symlink_to(root.resolve())
    env = {"XDG_DATA_HOME": str(tmp_path / "share")}
    proc = convert("scan", str(link), "--model", str(trained_model), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = tmp_path / "share" / "edge-faces" / "library.db"
    assert json.loads(proc.stdout)["index"] == str(index) and index.is_file()
    assert "\r" not in proc.stderr  # no progress bar when stderr is not a terminal
    c = list(placed)[2]  # the one person test_scan_find_and_rescan leaves alone
    found = convert("find", c, env=env).stdout.splitlines()
    assert sorted(found) == sorted(str(link / p.relative_to(root.resolve())) for p in placed[c])


def test_bad_input_one_line(library, trained_model: Path, tmp_path: Path) -> None:
    root, _ = library
    cases = [
        ("scan", str(tmp_path / "nope"), "--index", str(tmp_path / "i.db"), "--model",
         str(trained_model)),
        ("scan", str(root), "--index", str(tmp_path / "i.db"), "--model", str(tmp_path / "x")),
        ("scan", str(root), "--index", str(tmp_path / "i.db"), "--jobs", "0"),
        ("find", "x", "--index", str(tmp_path / "missing.db")),
    ]  # fmt: skip
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    cases.append(("find", "x", "--index", str(garbage)))
    for args in cases:
        proc = convert(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    index = tmp_path / "ok.db"
    _scan(root / "misc", index, trained_model)
    proc = convert("find", "Nobody_Here", "--index", str(index))
    assert proc.returncode == 2 and "Nobody_Here" in proc.stderr


@pytest.mark.slow
def test_scan_resumes_after_sigint(data_dir: Path, trained_model: Path, tmp_path: Path) -> None:
    """Ctrl-C keeps the finished photos; the next scan does only the rest."""
    root = tmp_path / "photos"
    root.mkdir()
    faces = data_dir / "faces"
    for copy in range(10):  # 400 photos: a scan of 40 can end before the first commit is seen
        (root / str(copy)).mkdir()
        for name in known(faces)[:4]:
            for p in photos(faces, name):
                shutil.copy2(p, root / str(copy) / p.name)
    total = sum(1 for p in root.rglob("*") if p.is_file())
    index = tmp_path / "index.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convert", "scan", str(root), "--index", str(index), "--model",
         str(trained_model), "--jobs", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    done = 0
    deadline = time.monotonic() + 240
    while done < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if index.exists():
            try:
                with sqlite3.connect(index) as db:
                    done = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
            except sqlite3.OperationalError:  # schema not created yet
                pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    stopped = json.loads(out)
    assert stopped["interrupted"] and 3 <= stopped["scanned"] < total
    with sqlite3.connect(index) as db:
        indexed = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    assert indexed == stopped["scanned"]
    resumed = _scan(root, index, trained_model)
    assert resumed["skipped"] == indexed
    assert resumed["scanned"] == total - indexed


def test_scan_goes_on_past_odd_files(data_dir: Path, trained_model: Path, tmp_path: Path) -> None:
    """A Latin-1 name, a link loop, a FIFO and a huge PNG: one line each, the rest indexed."""
    from tests.odd_files import huge_png, latin1_name, odd_files

    root = tmp_path / "photos"
    odd = odd_files(root)
    good = train_photos(data_dir / "faces", known(data_dir / "faces")[0])[0]
    shutil.copy2(good, root / good.name)
    latin = latin1_name(root)
    shutil.copy2(good, latin)
    huge_png(root / "huge.png")
    index = tmp_path / "index.db"
    proc = convert("scan", str(root), "--index", str(index), "--model", str(trained_model),
                   "--jobs", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert (report["found"], report["scanned"], report["failed"]) == (5, 2, 4)
    warned = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warned) == 4, proc.stderr
    assert f"skipped {root}/caf\\xe9.jpg: the file name is not valid UTF-8" in proc.stderr
    assert f"skipped {odd['fifo']}: not a regular file" in proc.stderr
    assert f"skipped {odd['loop']}: unreadable (Too many levels of symbolic links)" in proc.stderr
    assert "huge.png: 20000x20000 pixels is more than the 50 million" in proc.stderr
    again = convert("scan", str(root), "--index", str(index), "--model", str(trained_model),
                    "--jobs", "1")  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["skipped"] == 2


def test_foreign_database_is_left_untouched(library, trained_model: Path, tmp_path: Path) -> None:
    root, _ = library
    other = tmp_path / "contacts.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        db.execute("INSERT INTO contacts VALUES ('Ann', '555')")
    before = other.read_bytes()
    for args in (
        ("scan", str(root / "misc"), "--index", str(other), "--model", str(trained_model)),
        ("find", "Ann", "--index", str(other)),
    ):
        proc = convert(*args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert [line for line in proc.stderr.splitlines() if "error" in line.lower()] == [
            f"error: {other}: an SQLite database of another program (tables contacts), "
            "left untouched: give --index a new file"
        ]
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.db"]


def test_index_is_private(library, trained_model: Path, tmp_path: Path) -> None:
    import os
    import stat

    root, _ = library
    index = tmp_path / "index.db"
    old = os.umask(0o022)  # what most desktops use: new files would be world-readable
    try:
        _scan(root / "misc", index, trained_model)
    finally:
        os.umask(old)
    for path in tmp_path.glob("index.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def _children(pid: int) -> list[int]:
    out = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat_file.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_sigterm_stops_the_workers_and_prints_the_summary(
    data_dir: Path, trained_model: Path, tmp_path: Path, sig: int
) -> None:
    """SIGTERM: the summary and no worker left; SIGKILL: at least no worker left."""
    root = tmp_path / "photos"
    root.mkdir()
    faces = data_dir / "faces"
    for name in known(faces)[:4]:  # 120 photos of 750 px: a scan that lasts seconds
        for p in photos(faces, name):
            big = cv2.resize(cv2.imread(str(p)), (750, 750))
            for k in range(3):
                cv2.imwrite(str(root / f"{p.stem}-{k}.jpg"), np.roll(big, 5 * k, axis=1))
    index = tmp_path / "index.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "convert", "scan", str(root), "--index", str(index), "--model",
         str(trained_model), "--jobs", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    done, workers = 0, []
    deadline = time.monotonic() + 240
    while done < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        workers = _children(proc.pid)
        try:
            with sqlite3.connect(index) as db:
                done = db.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
        except sqlite3.OperationalError:
            pass
    assert len(workers) >= 2, workers
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert "Traceback" not in err, err[-2000:]
        stopped = json.loads(out)
        assert stopped["interrupted"] and stopped["scanned"] >= 1
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [w for w in workers if _alive(w)], "workers outlived the scan"
