"""Config loading: defaults, documented keys, and one clear line for every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import ConfigError, describe, load_config
from tests.conftest import ROOT, run_edge


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_embedded_defaults_load(models_dir):
    cfg = load_config(None)
    assert cfg.detect.method == "two-stage"
    assert cfg.mqtt.host == ""
    assert Path(cfg.camera.source).name == "carphone_pristine.mp4"
    assert Path(cfg.detect.res10_model).is_absolute()


def test_config_yaml_documents_every_key_with_defaults(models_dir):
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    shipped = _flatten(data)
    schema = {key: default for key, default, _ in describe()}
    assert set(shipped) == set(schema)
    assert {k: v for k, v in shipped.items() if v != schema[k]} == {}, (
        "config.yaml values differ from the defaults"
    )
    text = (ROOT / "config.yaml").read_text()
    for key in schema:
        leaf = key.rsplit(".", 1)[-1]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"{leaf}:"))
        assert "#" in line, f"config.yaml: {key} has no comment"


def test_relative_paths_resolve_against_config_folder(tmp_path, models_dir):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    (tmp_path / "c.yaml").write_text("camera:\n  source: clip.mp4\nunknown_faces:\n  dir: faces\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.camera.source == str(video)
    assert cfg.unknown_faces.dir == str(tmp_path / "faces")


def test_password_from_environment(tmp_path, monkeypatch, models_dir):
    (tmp_path / "c.yaml").write_text("mqtt:\n  host: localhost\n  password_env: MY_PW\n")
    monkeypatch.setenv("MY_PW", "s3cret")
    assert load_config(tmp_path / "c.yaml").mqtt_password() == "s3cret"


BAD = [
    ("unknown key", "camera:\n  sauce: 0\n", "camera.sauce: unknown key"),
    ("unknown section", "cammera:\n  source: 0\n", "cammera: unknown key"),
    ("wrong type", "camera:\n  fps: fast\n", "camera.fps must be a number, got 'fast'"),
    ("negative fps", "camera:\n  fps: -5\n", "camera.fps must be >= 0.1, got -5.0"),
    (
        "bool as int",
        "detect:\n  every_n_frames: true\n",
        "detect.every_n_frames must be an integer",
    ),
    (
        "bad choice",
        "detect:\n  method: yolo\n",
        "detect.method must be one of two-stage, dnn, haar, got 'yolo'",
    ),
    ("port out of range", "mqtt:\n  port: 70000\n", "mqtt.port must be <= 65535, got 70000"),
    ("section not a mapping", "mqtt: localhost\n", "mqtt must be a mapping of keys, got str"),
    ("missing model file", "recognize:\n  model: nope.tflite\n", "recognize.model: file not found"),
    (
        "missing detector model",
        "detect:\n  res10_model: /nope.caffemodel\n",
        "detect.res10_model: file not found: /nope.caffemodel",
    ),
    ("missing video", "camera:\n  source: nowhere.mp4\n", "camera.source: no such file or device"),
    ("missing CA file", "mqtt:\n  tls:\n    ca_file: ca.pem\n", "mqtt.tls.ca_file: file not found"),
    ("unreadable YAML", "camera: [1, 2\n", "not valid YAML at line 2"),
    ("top level is a list", "- a\n- b\n", "top level must be a mapping of keys, got list"),
    (
        "bad rotation",
        "camera:\n  rotation: 45\n",
        "camera.rotation must be one of 0, 90, 180, 270, got 45",
    ),
    ("bad log level", "log_level: LOUD\n", "log_level must be one of DEBUG, INFO, WARNING, ERROR"),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_line(tmp_path, case, text, message, models_dir):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_cli_bad_config_exits_2_with_one_line(tmp_path, models_dir):
    path = tmp_path / "bad.yaml"
    path.write_text("camera:\n  fps: -1\n")
    proc = run_edge("--config", str(path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: camera.fps must be >= 0.1, got -1.0"
    ]
    assert proc.stdout == ""


def test_cli_bad_argument_exits_2(models_dir):
    proc = run_edge("--max-frames", "0", timeout=60)
    assert proc.returncode == 2
    assert "--max-frames must be >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr
