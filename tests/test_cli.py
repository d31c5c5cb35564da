"""The first hour of a new user: help, typos, one-line errors, --model/--out, progress, setup.sh."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_convert, run_edge
from tests.splits import known, photos, strangers

# Run `python -m convert` as on the Pi's runtime install: TensorFlow and scikit-learn absent.
RUNTIME_ONLY = """
import importlib.util, runpy, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name in ("tensorflow", "sklearn") else real(name, *a)
sys.modules["tensorflow"] = sys.modules["sklearn"] = None
sys.argv = ["python -m convert", *sys.argv[1:]]
runpy.run_module("convert", run_name="__main__")
"""


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "error: " in lines[0], proc.stderr
    return lines[0]


def _error_after_our_logs(proc: subprocess.CompletedProcess) -> str:
    """The error line, after nothing but our own log lines (no OpenCV or ffmpeg noise)."""
    *logs, last = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert all(re.match(r"\S+ \S+ (INFO|WARNING) edge", line) for line in logs), proc.stderr
    return last


def test_edge_help_lists_every_subcommand_in_one_line():
    proc = run_edge("--help")
    assert proc.returncode == 0
    from edge.__main__ import COMMANDS

    for name, command in COMMANDS.items():
        assert f"  {name}  " in proc.stdout and command.help in proc.stdout
    assert "--model FILE" in proc.stdout and "Exit status" in proc.stdout


@pytest.mark.parametrize(
    "argv", [("idenitfy", "x.jpg"), ("--max-frames", "3", "idenitfy", "x.jpg")]
)
def test_mistyped_command_gets_a_hint(argv):
    assert "did you mean identify?" in _one_error_line(run_edge(*argv))


def test_source_errors_blame_the_flag_in_one_line(tmp_path, trained_model):
    assert (
        _one_error_line(run_edge("--source", "nope.mp4"))
        == "error: --source nope.mp4: no such file"
    )
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(5000))
    line = _one_error_line(run_edge("--source", str(corrupt), "--model", str(trained_model)))
    assert line == f"error: --source {corrupt}: not a readable video (corrupt or unsupported)"
    if not Path("/dev/video7").exists():  # an absent camera: no OpenCV WARN lines first
        line = _error_after_our_logs(run_edge("--source", "7", "--model", str(trained_model)))
        assert line == "error: cannot open camera 7"
    assert _one_error_line(run_edge("--model", str(tmp_path / "x.tflite"))) == (
        f"error: --model {tmp_path / 'x.tflite'}: no such file"
    )


def test_capture_loop_takes_model(trained_model):
    proc = run_edge("--model", str(trained_model), "--max-frames", "5")
    assert proc.returncode == 0, proc.stderr
    assert f"face model {trained_model}: 7 people" in proc.stderr


def test_identify_errors_and_closest_person(tmp_path, trained_model, data_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _one_error_line(run_edge("identify", str(empty), "--model", str(trained_model)))
    assert line.startswith(f"error: {empty}: no images found")

    faces = data_dir / "faces"
    stranger = photos(faces, strangers(faces)[0])[0]
    person = photos(faces, known(faces)[0])[-1]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    proc = run_edge(
        "identify", str(stranger), str(person), str(broken), "--model", str(trained_model)
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {broken}: not a readable image (corrupt or unsupported format)"
    ]
    first, second = (json.loads(line)["faces"][0] for line in proc.stdout.splitlines())
    assert first["name"] == "unknown"
    assert first["closest"] in json.loads(trained_model.with_suffix(".json").read_text())["labels"]
    assert 0.0 < first["distance"] < 2.0
    assert second["name"] == known(faces)[0] and "closest" not in second


def test_preview_label_names_the_closest_person(cfg, trained_model, data_dir):
    from edge.align import Aligner
    from edge.detect import create_photo_detector
    from edge.images import read_image
    from edge.pipeline import _unknown_label
    from edge.recognize import FaceModel

    model = FaceModel.load(trained_model, cfg.recognize)
    faces = data_dir / "faces"
    image = read_image(photos(faces, strangers(faces)[0])[0])
    face = max(create_photo_detector(cfg.detect).detect(image), key=lambda f: f.box[2] * f.box[3])
    ident = model.identify(Aligner(cfg.detect).crop(image, face, model.input_size))
    name, dist = model.closest(ident.embedding)
    assert _unknown_label(model, ident.embedding) == f"unknown (closest {name}, d {dist:.2f})"
    assert _unknown_label(None, None) == "unknown"  # detect only


@pytest.fixture
def cfg():
    from edge.config import load_config

    return load_config(None, {})


def test_convert_help_and_runtime_only_install(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", RUNTIME_ONLY, "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("train", "eval", "cluster", "enroll", "forget", "scan", "find"):
        assert f"    {name} " in proc.stdout
    for argv in (("train", str(tmp_path)), ("cluster", str(tmp_path))):
        proc = subprocess.run(
            [sys.executable, "-c", RUNTIME_ONLY, *argv], cwd=ROOT, capture_output=True, text=True
        )
        assert "this needs `./setup.sh --convert`" in _one_error_line(proc)


def test_train_out_refuses_what_cannot_hold_a_model(tmp_path, data_dir):
    faces = data_dir / "faces"
    ds = tmp_path / "ds"
    for name in known(faces)[:2]:
        (ds / name).mkdir(parents=True)
        for photo in photos(faces, name)[:2]:
            shutil.copy(photo, ds / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "m.tflite").mkdir()
    for out, why in (
        ("notes.txt", "an existing file that is not a .tflite"),
        ("m.tflite", "is a folder"),
        ("model.json", "not a .tflite name"),
    ):
        proc = run_convert("train", str(ds), "--out", str(tmp_path / out))
        assert why in _one_error_line(proc)
    assert not (tmp_path / "model.json").exists()


@pytest.mark.slow
def test_train_out_file_is_written_then_replaced_atomically(tmp_path, data_dir):
    faces = data_dir / "faces"
    ds = tmp_path / "ds"
    for name in known(faces)[:2]:
        (ds / name).mkdir(parents=True)
        for photo in photos(faces, name)[:3]:
            shutil.copy(photo, ds / name)
    out = tmp_path / "x" / "faces.tflite"
    first = run_convert("train", str(ds), "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    assert out.is_file() and out.with_suffix(".json").is_file()
    store = json.loads(out.with_suffix(".json").read_text())["store"]
    assert (
        f"wrote model {out}, labels {out.with_suffix('.json')} and embedding store {store}\n"
        in (first.stderr)
    )
    assert json.loads(first.stdout)["model"] == str(out)
    second = run_convert("train", str(ds), "--out", str(out))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "(replacing the previous ones)" in second.stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    kept = {meta["store"], meta["previous_store"]}  # a running edge may be loading the previous
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [".faces.lock", "faces.json", "faces.slugs.json", "faces.tflite", *kept]
    )  # no temp file, no journal
    for noise in ("Traceback", "fully_quantize", "oneDNN", "absl::", "UserWarning", "XNNPACK"):
        assert noise not in first.stderr + second.stderr


def test_progress_bars_only_on_a_terminal():
    from edge.progress import progress

    plain = io.StringIO()
    for _ in progress(range(3), desc="steps", file=plain):
        pass
    assert plain.getvalue() == ""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100
    with os.fdopen(slave, "w") as tty:
        for _ in progress(range(3), desc="steps", file=tty):
            pass
    chunks = []  # everything the bar wrote: one read may return only its first write
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed and all was read
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    shown = b"".join(chunks).decode()
    assert "steps" in shown and "3/3" in shown


def test_setup_help_is_a_usage_text():
    proc = subprocess.run(
        ["bash", str(ROOT / "setup.sh"), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: ./setup.sh")
    for option in ("--convert", "--test-deps", "--test", "--install-service"):
        assert option in proc.stdout
    assert "set -euo" not in proc.stdout


def test_quieting_native_stderr_holds_other_threads_log_lines(tmp_path):
    """fd 2 is the process's: a log line another thread writes while TFLite or OpenCV is
    silenced must wait and then appear, not vanish with the native noise."""
    script = tmp_path / "quiet.py"
    script.write_text(
        "import logging, os, sys, threading, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from edge.quiet import quiet_native_stderr\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s')\n"
        "started = threading.Event()\n"
        "def other():\n"
        "    started.wait()\n"
        "    logging.warning('from the other thread')\n"
        "t = threading.Thread(target=other); t.start()\n"
        "with quiet_native_stderr():\n"
        "    started.set(); time.sleep(0.3)\n"
        "    os.write(2, b'native noise\\n')\n"
        "t.join()\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "from the other thread\n"
