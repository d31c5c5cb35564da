"""edge/recognize.py and edge/align.py against a real trained model and real photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import load_config
from edge.detect import Face
from edge.errors import ModelError
from edge.recognize import UNKNOWN, FaceModel
from tests.conftest import run_edge
from tests.splits import heldout_photos, known, strangers


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, {})


@pytest.fixture(scope="module")
def model(trained_model, cfg) -> FaceModel:
    return FaceModel.load(trained_model, cfg.recognize)


def test_model_metadata(model, data_dir):
    assert model.labels == known(data_dir / "faces")
    assert model.input_size == 160
    meta = json.loads(model.path.with_suffix(".json").read_text())
    assert meta["backbone"] == "facenet"
    assert 0.0 <= meta["thresholds"]["min_probability"] <= 1.0
    assert meta["metrics"]["int8_vs_float"]["top1_agreement"] >= 0.99
    assert model.path.stat().st_size <= 30e6


def test_identify_cli_names_held_out_photos(trained_model, data_dir):
    faces = data_dir / "faces"
    photos = [p for n in known(faces) for p in heldout_photos(faces, n)]
    proc = run_edge("identify", *map(str, photos), "--model", str(trained_model))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(lines) == len(photos)
    right = 0
    for line, photo in zip(lines, photos, strict=True):
        # LFW photos can show a second person; the largest face is the labelled one
        face = max(line["faces"], key=lambda f: f["box"][2] * f["box"][3])
        right += face["name"] == photo.parent.name
        assert 0.0 <= face["confidence"] <= 1.0
    assert right >= 0.9 * len(photos), f"{right}/{len(photos)} named correctly"


def test_strangers_are_unknown(model, cfg, data_dir):
    from edge.align import Aligner
    from edge.detect import create_detector

    faces = data_dir / "faces"
    detector, aligner = create_detector(cfg.detect), Aligner(cfg.detect)
    names = []
    for name in strangers(faces):
        for photo in heldout_photos(faces, name)[:4]:
            image = cv2.imread(str(photo))
            found = detector.detect(image)
            if not found:  # the detector misses a few LFW faces; not this test's subject
                continue
            face = max(found, key=lambda f: f.box[2] * f.box[3])
            ident = model.identify(aligner.crop(image, face, model.input_size))
            assert ident.embedding.shape == (512,)
            assert abs(float(np.linalg.norm(ident.embedding)) - 1.0) < 1e-3
            names.append(ident.name)
    assert names.count(UNKNOWN) >= len(names) - 1, names


def test_threshold_overrides(trained_model, cfg, data_dir):
    faces = data_dir / "faces"
    photo = heldout_photos(faces, known(faces)[0])[0]
    crop = cv2.resize(cv2.imread(str(photo))[60:200, 60:190], (160, 160))
    rcfg = cfg.recognize
    strict = FaceModel.load(trained_model, type(rcfg)(**{**vars(rcfg), "min_probability": 1.0}))
    assert strict.identify(crop).name == UNKNOWN
    loose = FaceModel.load(
        trained_model, type(rcfg)(**{**vars(rcfg), "min_probability": 0.0, "max_distance": 2.0})
    )
    assert loose.identify(crop).name in loose.labels


def _copy_model(trained_model: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "faces.tflite"
    shutil.copy(trained_model, dst)
    shutil.copy(trained_model.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no_json", "labels file missing"),
        ("bad_json", "not valid JSON"),
        ("few_labels", "centroids of shape"),
        ("wrong_outputs", "do not match faces.json"),
        ("bad_tflite", "not a valid TFLite model"),
        ("no_model", "face model not found"),
    ],
)
def test_load_errors_are_one_line(trained_model, tmp_path, cfg, damage, message):
    path = _copy_model(trained_model, tmp_path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    if damage == "no_json":
        meta_path.unlink()
    elif damage == "bad_json":
        meta_path.write_text("{labels: ")
    elif damage == "few_labels":
        meta["labels"] = meta["labels"][:-1]
        meta_path.write_text(json.dumps(meta))
    elif damage == "wrong_outputs":
        meta["labels"] = meta["labels"][:-1]
        meta["centroids"] = meta["centroids"][:-1]
        meta_path.write_text(json.dumps(meta))
    elif damage == "bad_tflite":
        path.write_bytes(b"not a flatbuffer" * 100)
    elif damage == "no_model":
        path.unlink()
    with pytest.raises(ModelError) as err:
        FaceModel.load(path, cfg.recognize)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_identify_cli_bad_model_exits_2(tmp_path, data_dir):
    bad = tmp_path / "faces.tflite"
    bad.write_bytes(b"junk")
    photo = next((data_dir / "faces").iterdir()).iterdir().__next__()
    proc = run_edge("identify", str(photo), "--model", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_align_levels_a_tilted_face(cfg, data_dir):
    """A photo rotated by 20 degrees crops to nearly the same face as the upright one."""
    from edge.align import Aligner
    from edge.detect import create_detector

    photo = heldout_photos(data_dir / "faces", known(data_dir / "faces")[1])[0]
    image = cv2.imread(str(photo))
    detector, aligner = create_detector(cfg.detect), Aligner(cfg.detect)
    face = max(detector.detect(image), key=lambda f: f.box[2] * f.box[3])
    a, b = aligner.eyes(image, face)
    upright_tilt = np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0]))
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0)
    rotated = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    box = face.box
    corners = np.array([[box[0], box[1], 1], [box[0] + box[2], box[1] + box[3], 1]]) @ m.T
    cx, cy = corners.mean(axis=0)
    rface = Face((int(cx - box[2] / 2), int(cy - box[3] / 2), box[2], box[3]), 1.0)
    a, b = aligner.eyes(rotated, rface)
    rotated_tilt = np.degrees(np.arctan2(b[1] - a[1], b[0] - a[0]))
    assert abs((upright_tilt - rotated_tilt) - 20) < 5  # the eye line turned with the photo
    c1 = aligner.crop(image, face, 112).astype(np.float32)
    c2 = aligner.crop(rotated, rface, 112).astype(np.float32)
    assert c1.shape == c2.shape == (112, 112, 3)
    aligned_err = np.abs(c1 - c2)[20:92, 20:92].mean()
    assert aligned_err < 25, aligned_err


def test_edge_side_never_imports_tensorflow_or_convert():
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import sys, edge.recognize, edge.align, edge.__main__; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'convert', 'keras')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
