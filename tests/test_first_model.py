"""A Pi and nothing else: the first face model is made on the device by `edge enroll`, from the
int8 backbone (`convert backbone`), with TensorFlow and scikit-learn unimportable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_edge
from tests.splits import heldout_photos, known, strangers, train_photos

# TensorFlow, Keras and scikit-learn fail to import in the child (sitecustomize on PYTHONPATH)
BLOCKER = """
import importlib.abc, sys
class _NoTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"tensorflow", "keras", "sklearn", "tf_keras"}:
            raise ImportError(f"{name} is blocked: this test runs without the training tools")
        return None
sys.meta_path.insert(0, _NoTraining())
"""


def _backbone_key() -> str:
    from edge.config import DetectConfig

    h = hashlib.sha256(repr(DetectConfig()).encode())
    code = [ROOT / "convert" / f"{n}.py" for n in ("backbone", "backbone_file", "export")]
    code += sorted((ROOT / "edge" / "detectors").glob("*.py"))
    code += [ROOT / "edge" / n for n in ("align.py", "detect.py", "stills.py")]
    for path in code:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:20]


@pytest.fixture(scope="session")
def backbone(models_dir: Path, tmp_path_factory) -> Path:
    """models/backbone.tflite made by `python -m convert backbone` (cached like the test model)."""
    pytest.importorskip(
        "tensorflow", reason="convert backbone needs tensorflow (setup.sh --convert)"
    )
    cache_root = Path(
        os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-faces-tests")
    )
    final = cache_root / f"backbone-{_backbone_key()}"
    if (final / "backbone.tflite").is_file() and (final / "backbone.json").is_file():
        return final / "backbone.tflite"
    out = tmp_path_factory.mktemp("backbone") / "backbone.tflite"
    proc = subprocess.run(
        [sys.executable, "-m", "convert", "backbone", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, f"convert backbone failed:\n{proc.stderr[-3000:]}"
    staging = cache_root / f".{final.name}.{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    for name in ("backbone.tflite", "backbone.json"):
        shutil.copy2(out.with_name(name), staging / name)
    try:
        staging.rename(final)
    except OSError:  # another run got there first
        shutil.rmtree(staging, ignore_errors=True)
    return final / "backbone.tflite"


def pi_without_training(tmp_path: Path, backbone: Path | None) -> tuple[Path, dict]:
    """A device folder with only the backbone (or nothing), its config, and an environment in
    which TensorFlow and scikit-learn cannot be imported."""
    models = tmp_path / "models"
    models.mkdir(parents=True)
    if backbone is not None:
        for name in ("backbone.tflite", "backbone.json"):
            shutil.copy2(backbone.with_name(name), models / name)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"recognize:\n  model: {models / 'faces.tflite'}\n"
        f"enroll:\n  dataset: {tmp_path / 'dataset'}\n"
        f"unknown_faces:\n  dir: {tmp_path / 'unknown'}\n"
        f"history:\n  path: {tmp_path / 'history' / 'events.db'}\n"
    )
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    return config, {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_the_blocker_blocks(tmp_path):
    _, env = pi_without_training(tmp_path, None)
    for module in ("tensorflow", "sklearn"):
        proc = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            capture_output=True, text=True, env={**os.environ, **env},
        )  # fmt: skip
        assert proc.returncode != 0 and "blocked" in proc.stderr, proc.stderr


def test_no_backbone_says_how_to_make_it(tmp_path, data_dir):
    config, env = pi_without_training(tmp_path, None)
    photo = train_photos(data_dir / "faces", known(data_dir / "faces")[0])[0]
    proc = run_edge("enroll", "--config", str(config), "Ann", str(photo), env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert "backbone" in line and "convert backbone" in line, proc.stderr
    assert not (tmp_path / "models" / "faces.tflite").exists()


@pytest.mark.slow
def test_enroll_makes_the_first_model_without_tensorflow(tmp_path, data_dir, backbone):
    """3 people enrolled from no model (the first makes it), a 4th; held-out photos named,
    strangers rejected; every step in a process where TensorFlow cannot be imported."""
    faces = data_dir / "faces"
    config, env = pi_without_training(tmp_path, backbone)
    model = tmp_path / "models" / "faces.tflite"
    people = known(faces)[:4]
    for i, name in enumerate(people, 1):
        photos = [str(p) for p in train_photos(faces, name)]
        proc = run_edge("enroll", "--config", str(config), name, *photos, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout)
        assert out["people"] == i and out["generation"] == i and out["added"] == 7, out
        if i == 1:
            assert "first model" in out["thresholds"], out
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["labels"] == people and meta["head"] == "store"
    assert model.read_bytes() == backbone.read_bytes()  # the model file is the backbone

    mine = [p for n in people for p in heldout_photos(faces, n)]
    others = [p for n in known(faces)[4:] + strangers(faces) for p in heldout_photos(faces, n)]
    others += [p for n in known(faces)[4:] for p in train_photos(faces, n)]
    proc = run_edge(
        "identify", "--config", str(config), *map(str, mine + others), env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    named = {  # the photo's main (largest) face, as enrolment uses
        Path(r["image"]).name: max(r["faces"], key=lambda f: f["box"][2] * f["box"][3])["name"]
        if r["faces"]
        else None
        for r in map(json.loads, proc.stdout.splitlines())
    }
    right = sum(named[p.name] == p.parent.name for p in mine)
    rejected = sum(named[p.name] in ("unknown", None) for p in others)
    assert right / len(mine) >= 0.9, (right, len(mine), named)
    assert rejected / len(others) >= 0.99, (rejected, len(others), named)


@pytest.mark.slow
def test_a_crash_in_the_first_commit_leaves_no_model(tmp_path, data_dir, backbone):
    """Killed after the backbone was installed as faces.tflite but before faces.json: the next
    change rolls it back and starts the first model again."""
    from edge.config import load_config
    from edge.library import FaceLibrary, generation

    faces = data_dir / "faces"
    config, _ = pi_without_training(tmp_path, backbone)
    cfg = load_config(str(config), {})
    library = FaceLibrary(cfg)
    name = known(faces)[0]
    real = generation.files.write_atomic

    def crash_at_commit_point(path, data, mode):
        if path.name == "faces.json":
            raise KeyboardInterrupt  # the power goes at the commit point
        real(path, data, mode)

    generation.files.write_atomic = crash_at_commit_point
    try:
        with pytest.raises(KeyboardInterrupt):
            library.enroll(name, train_photos(faces, name)[:3])
    finally:
        generation.files.write_atomic = real
    model = tmp_path / "models" / "faces.tflite"
    assert model.exists() and not model.with_suffix(".json").exists()
    out = FaceLibrary(cfg).enroll(name, train_photos(faces, name)[:3])
    assert out["people"] == 1 and out["generation"] == 1
    assert not (tmp_path / "models" / ".faces.journal.json").exists()


@pytest.mark.slow
def test_a_visitor_named_first_makes_the_model_and_is_recognized_next_time(
    tmp_path, data_dir, backbone
):
    """No model, the backbone beside it: the loop keeps unknown visitors' aligned crops; naming
    one (as Home Assistant's text entity does, through the same library call) makes the first
    model, and the next clip names that person and nobody else."""
    from tests.doorbell import make_clip
    from tests.test_enroll_device import _clips_sharing_one_stranger, _events

    config, env = pi_without_training(tmp_path, backbone)
    first, second, stranger = _clips_sharing_one_stranger(data_dir)
    timeline = make_clip(data_dir, tmp_path / "one", visits=4, seed=first)
    events = _events(config, tmp_path / "one" / "clip.mp4")
    assert not [e for e in events if e["type"] == "recognized"], events
    (came,) = [v for v in timeline["visits"] if v["person"] == stranger]
    visits = {
        e["visit"]
        for e in events
        if e["type"] == "unknown" and came["first_frame"] <= e["frame"] <= came["last_frame"]
    }
    assert len(visits) == 1, (visits, events)
    proc = run_edge("enroll", "Tony", "--visitor", str(*visits), "--config", str(config), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["people"] == 1 and "first model" in out["thresholds"], out

    timeline = make_clip(data_dir, tmp_path / "two", visits=4, seed=second)
    events = _events(config, tmp_path / "two" / "clip.mp4")
    (came,) = [v for v in timeline["visits"] if v["person"] == stranger]
    named = [e for e in events if e["type"] == "recognized"]
    assert named and all(e["name"] == "Tony" for e in named), events
    assert all(came["first_frame"] <= e["frame"] <= came["last_frame"] for e in named), named


@pytest.mark.slow
def test_a_pi_with_only_the_backbone_adopts_the_households_people(tmp_path, data_dir, backbone):
    """library.share on two Pis that start from the same backbone: the front makes its first
    model by enrolling; the back, with no model yet, counts as having the same file and its
    adoption installs the backbone as its model, with the front's people."""
    from edge.config import load_config
    from edge.library import FaceLibrary
    from edge.share.service import backbone_hash
    from tests.test_share import _exchange

    libs = []
    for device in ("front", "back"):
        config, _ = pi_without_training(tmp_path / device, backbone)
        config.write_text(
            config.read_text() + f"mqtt:\n  device_id: {device}\nlibrary:\n  share: true\n"
        )
        libs.append(FaceLibrary(load_config(config)))
    front, back = libs
    faces = data_dir / "faces"
    for name in known(faces)[:2]:
        front.enroll(name, train_photos(faces, name)[:3])
    assert not back.model.exists()
    assert backbone_hash(back.model) == backbone_hash(front.model)  # both: the backbone's hash
    _exchange(front, back)
    assert back.model.read_bytes() == backbone.read_bytes()
    meta = json.loads(back.model.with_suffix(".json").read_text())
    assert meta["labels"] == json.loads(front.model.with_suffix(".json").read_text())["labels"]
    assert sorted(meta["labels"]) == sorted(known(faces)[:2])
