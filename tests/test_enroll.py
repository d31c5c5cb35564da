"""`convert enroll` / `convert forget`: the dataset changes and the model is retrained."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import run_convert, run_edge
from tests.splits import heldout_photos, known, train_photos

convert = partial(run_convert, timeout=900)


def _dataset(data_dir: Path, root: Path, people: list[str]) -> Path:
    for name in people:
        (root / name).mkdir(parents=True)
        for photo in train_photos(data_dir / "faces", name):
            shutil.copy2(photo, root / name / photo.name)
    return root


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


def test_enroll_forget_refuse_bad_input(
    data_dir: Path, models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    faces = data_dir / "faces"
    root = _dataset(data_dir, tmp_path / "dataset", known(faces)[:2])
    before = sorted(p.relative_to(root) for p in root.rglob("*") if ".cache" not in p.parts)
    model = str(tmp_path / "models" / "faces.tflite")
    no_face = [str(data_dir / "no_face" / n) for n in ("coffee.png", "moon.png")]
    a_photo = str(train_photos(faces, known(faces)[2])[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    from tests.odd_files import odd_files

    odd = odd_files(tmp_path / "odd")  # a FIFO hung the copy
    cases = {
        "not a usable name": ("enroll", "../evil", a_photo, "--dataset", str(root)),
        "reserved for strangers": ("enroll", "_unknown", a_photo, "--dataset", str(root)),
        "reports strangers as 'unknown'": ("enroll", "Unknown", a_photo, "--dataset",
                                           str(root)),
        f"already has '{known(faces)[0]}'": ("enroll", known(faces)[0].lower(), a_photo,
                                             "--dataset", str(root)),
        "0 usable photo(s) of 2": ("enroll", "Someone", *no_face, "--dataset", str(root)),
        "need at least 2": ("enroll", "Someone", a_photo, "--dataset", str(root)),
        "no such photo or folder": ("enroll", "X", str(tmp_path / "none"), "--dataset", str(root)),
        "no photos found": ("enroll", "Someone", str(empty), "--dataset", str(root)),
        f"{odd['fifo'].parent}: no photos found": ("enroll", "Someone", str(odd["fifo"].parent),
                                                   "--dataset", str(root)),
        "nothing new": ("enroll", known(faces)[0], str(root / known(faces)[0]), "--dataset",
                        str(root)),
        "no dataset recorded": ("enroll", "Someone", a_photo, "--model", model),
        "people there: Ariel_Sharon, Arnold_Schwarzenegger": (
            "forget", "Nobody", "--dataset", str(root),
        ),
        "at least 2 people left": ("forget", known(faces)[0], "--dataset", str(root)),
    }  # fmt: skip
    from convert.__main__ import main

    for expected, args in cases.items():  # in-process: a subprocess each is slow
        rc = main(list(args))
        out, err = capsys.readouterr()
        lines = [ln for ln in err.splitlines() if "error" in ln.lower()]
        assert rc == 2 and out == "" and len(lines) == 1, (args, err[-2000:])
        assert lines[0].startswith("error: ") and expected in lines[0], (args, lines[0])
    _error_line(convert("forget", "Nobody", "--dataset", str(root)))  # the same from the CLI
    after = sorted(p.relative_to(root) for p in root.rglob("*") if ".cache" not in p.parts)
    assert after == before  # nothing was copied or deleted
    assert not (tmp_path / "models").exists()  # and nothing trained


def _identify(model: Path, photo: Path) -> str:
    proc = run_edge("identify", str(photo), "--model", str(model))
    assert proc.returncode == 0, proc.stderr[-2000:]
    faces = json.loads(proc.stdout)["faces"]
    return max(faces, key=lambda f: f["box"][2] * f["box"][3])["name"]


@pytest.mark.slow
def test_enroll_then_forget(data_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    """Two people trained; a third enrolled from photos and recognized; then forgotten."""
    faces = data_dir / "faces"
    first, second, new = known(faces)[:3]
    root = _dataset(data_dir, tmp_path / "dataset", [first, second])
    model = tmp_path / "models" / "faces.tflite"
    photos = [str(p) for p in train_photos(faces, new)] + [str(data_dir / "no_face" / "moon.png")]

    proc = convert("enroll", new, *photos, "--dataset", str(root), "--model", str(model))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["added"] == 7 and result["rejected"] == 1
    assert sorted(p.name for p in (root / new).iterdir()) == sorted(
        p.name for p in train_photos(faces, new)
    )
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["labels"] == sorted([first, second, new])
    assert Path(meta["dataset"]["path"]) == root.resolve()
    unseen = heldout_photos(faces, new)[0]
    assert _identify(model, unseen) == new

    # forget finds the dataset in faces.json
    proc = convert("forget", new, "--model", str(model))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["removed"] == 7
    assert not (root / new).exists()
    assert json.loads(model.with_suffix(".json").read_text())["labels"] == [first, second]
    assert _identify(model, unseen) != new
