"""Every command in the `sh`/`console` blocks of README.md and docs/*.md, as written.

Each documented command is in exactly one of RUN (run for real in a sandbox copy of the
project, with the real models and ../shared/data), SLOW (the same, marked slow) or CHECK
(not runnable here: parsed by its own argument parser, or its options found in its
--help). A command added to the docs without a place here, or a place here whose command
left the docs, fails the test. Usage synopses live in `text` blocks; their options are
checked against the commands' --help.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.facestore import FaceStore
from tests.conftest import DATA, ROOT
from tests.splits import known, photos, strangers, train_photos

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^`\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)

RUN = {
    ".venv/bin/python -m edge",
    ".venv/bin/python -m edge --help",
    ".venv/bin/python -m convert --help",
    "mkdir -p dataset/Alice dataset/Bob dataset/_unknown",
    ".venv/bin/python -m edge identify some/photos/",
    ".venv/bin/python -m convert eval testset/ --model models/faces.tflite",
    ".venv/bin/python -m edge identify photo.jpg photos/ --model models/faces.tflite",
    ".venv/bin/python -m convert scan photos/",
    ".venv/bin/python -m convert find alice",
    "python -m edge",
    "python -m edge --config config.yaml",
    "python -m edge --source clip.mp4 --realtime",
    "python -m edge --source clip.mp4 --model models/faces.tflite --max-frames 300 --stats-json run.json",
    "python -m edge --help",
    ".venv/bin/python tests/doorbell.py --out door --visits 20 --seed 0",
    ".venv/bin/python -m edge enroll Carol carol/",
    '.venv/bin/python -m edge rename Carol "Carol B"',
    '.venv/bin/python -m edge forget "Carol B" --yes',
    "python -m edge visitors",
}
SLOW = {
    ".venv/bin/python -m convert train dataset/",  # TensorFlow, about a minute
}
EXPECT = {  # what a run must print on stdout, beyond exit 0 ({box}: the sandbox)
    ".venv/bin/python -m edge identify some/photos/": '"name": "Alice"',
    ".venv/bin/python -m convert eval testset/ --model models/faces.tflite": '"known_photos": 6',
    ".venv/bin/python -m convert scan photos/": '"found": 4',
    ".venv/bin/python -m convert find alice": "{box}/photos/",
    ".venv/bin/python -m convert train dataset/": '"people": 2',
    ".venv/bin/python -m edge --help": "identify",
    ".venv/bin/python -m edge enroll Carol carol/": '"people": 8',
    '.venv/bin/python -m edge forget "Carol B" --yes': '"people": 7',
}
CHECK = {  # why each is not run here
    "./setup.sh": "installs; run by CI and tests/arm64/run.sh",
    "./setup.sh --test": "runs this very suite",
    "./setup.sh --convert": "installs TensorFlow",
    "./setup.sh --install-service": "root, systemd",
    "journalctl -u edge -f": "systemd on the Pi; follows forever",
    "sudo tests/arm64/run.sh": "root, debootstrap, about 10 minutes",
    "sudo tests/arm64/run.sh --json /tmp/arm64.json": "same",
    "sudo tests/arm64/run.sh --face-model ~/.cache/edge-faces-tests/model-*/faces.tflite": "same",
    "sudo tests/arm64/run.sh --rebuild": "same",
    "python -m edge --source 0 --preview": "a USB camera and a display",
    "bench/setup-peers.sh": "installs face_recognition and the seed's packages",
    "python -m edge enroll Carol --visitor 12": "needs visitor 12 saved by a run (tested in test_enroll_device.py)",
    "python -m edge ignore 13": "same",
    # docs/pi-only.md and docs/arm64.md (issue 25)
    ".venv/bin/python -m convert backbone": "TensorFlow, 2 min, 3 GB (test_first_model.py runs it)",
    "sudo tests/arm64/run.sh --suite trixie --first-model --json /tmp/arm64-trixie.json": "root, about an hour emulated",
    "sudo tests/arm64/run.sh --suite bookworm --first-model --json /tmp/arm64-bookworm.json": "same",
    ".venv/bin/python bench/backbone_agreement.py aarch64/backbone.tflite models/backbone.tflite": "needs a backbone made on aarch64",
    ".venv/bin/python bench/peers.py": "about an hour",
    ".venv/bin/python bench/pipeline.py": "about an hour",
    ".venv/bin/python bench/pipeline.py --skip-videos --out pipeline-doorbell.json": "20 minutes",
    ".venv/bin/python bench/pipeline.py --soak-only --soak-minutes 10": "10 minutes",
    ".venv/bin/python bench/soak.py --minutes 30 --restart-every 180 --down 5": "30 minutes",
    ".venv/bin/python -m edge --config web.yaml --source door/clip.mp4 --realtime": "serves the web app for the clip's 150 s (tests/test_web_browser.py does it)",
    ".venv/bin/python bench/web.py --repeats 3": "about 8 minutes",
    ".venv/bin/python -m edge --config cameras.yaml": "Pi cameras and an RTSP camera (tests/test_cameras.py runs two)",
    ".venv/bin/python bench/cameras.py --repeats 2": "about 12 minutes",
    ".venv/bin/python bench/history.py --rounds 3": "about 15 minutes",
    ".venv/bin/python bench/scanspeed.py --rounds 2": "about 6 minutes; needs .venv-peers",
    ".venv/bin/python bench/library_scale.py --photos 10000 --jobs 1 2": "over an hour",
    ".venv/bin/python bench/share.py": "about 3 minutes: two edge processes (tests/test_household.py runs them)",
    ".venv/bin/python bench/loopspeed.py --clips door --baseline /tmp/old": "about 15 minutes; needs .venv-peers",
    ".venv/bin/python bench/scanspeed.py --rounds 2 --baseline /tmp/old": "about 8 minutes; needs .venv-peers",
    ".venv/bin/python bench/library_scale.py --photos 10000 --jobs 1 2 --subset 2000 --keep /tmp/lib10k": "about 25 minutes",
}


def _blocks() -> list[tuple[str, int, str, str]]:
    """(doc, line, language, body) of every fenced block."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((str(doc.relative_to(ROOT)), line, m.group(1).strip(), m.group(2)))
    return out


def _commands() -> list[tuple[str, str]]:
    """(where, command) for each command of the sh/console blocks, comments stripped."""
    out = []
    for doc, line, lang, body in _blocks():
        if lang not in ("sh", "console"):
            continue
        for i, raw in enumerate(body.replace("\\\n", " ").splitlines()):
            if lang == "console":
                if not raw.startswith("$ "):
                    continue
                raw = raw[2:]
            text = re.sub(r"(^|\s)#.*$", "", raw).strip()
            for part in text.split(" && "):
                if part.strip():
                    out.append((f"{doc}:{line + 1 + i}", " ".join(part.split())))
    return out


COMMANDS = _commands()


def test_every_block_says_what_it_holds():
    untagged = [f"{doc}:{line}" for doc, line, lang, _ in _blocks() if not lang]
    assert not untagged, (
        f"give these blocks a language (sh for commands, text, json...): {untagged}"
    )


def test_every_documented_command_has_a_place_here_and_back():
    documented = {cmd for _, cmd in COMMANDS}
    placed = RUN | SLOW | set(CHECK)
    assert not documented - placed, f"new in the docs, put in RUN/SLOW/CHECK: {documented - placed}"
    assert not placed - documented, f"no longer in the docs: {placed - documented}"
    assert not (RUN & SLOW) and not ((RUN | SLOW) & set(CHECK))
    assert set(EXPECT) <= RUN | SLOW


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, trained_model: Path, models_dir: Path) -> Path:
    """A copy of the project as a new user has it after setup and a first training: models/
    (the test model, its first two people named Alice and Bob), dataset/, photos to look at."""
    if not (DATA / "faces").is_dir():
        pytest.skip(f"test data not found at {DATA}")
    box = tmp_path_factory.mktemp("docs") / "edge-faces"
    ignore = shutil.ignore_patterns("__pycache__", "results", "*.pyc")
    for name in ("edge", "convert", "tests", "bench", "systemd"):
        shutil.copytree(ROOT / name, box / name, ignore=ignore)
    for name in ("config.yaml", "setup.sh", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, box / name)
    (box / ".venv").symlink_to(ROOT / ".venv")
    (box / "models").mkdir()
    for f in models_dir.iterdir():
        if f.is_file() and not f.name.startswith(("faces.", ".")):
            (box / "models" / f.name).symlink_to(f)
    shutil.copy2(trained_model, box / "models" / "faces.tflite")
    meta = json.loads(trained_model.with_suffix(".json").read_text())
    faces = DATA / "faces"
    alice, bob = known(faces)[:2]
    names = {alice: "Alice", bob: "Bob"}
    meta["labels"] = [names.get(n, n) for n in meta["labels"]]
    (box / "models" / "faces.json").write_text(json.dumps(meta))
    store = FaceStore.load(trained_model.with_name(meta["store"]))
    store.labels = meta["labels"]  # the embedding store names the same people
    (box / "models" / meta["store"]).write_bytes(store.to_bytes())
    held = {p: [x for x in photos(faces, p) if x not in train_photos(faces, p)] for p in names}
    stranger = photos(faces, strangers(faces)[0])
    layout = {
        "dataset/Alice": train_photos(faces, alice)[:5],
        "dataset/Bob": train_photos(faces, bob)[:5],
        "dataset/_unknown": stranger[:3],
        "some/photos": [*held[alice][:2], stranger[3]],
        "photos": [*held[alice], stranger[4]],
        "testset/Alice": held[alice],
        "testset/Bob": held[bob],
        "testset/_unknown": photos(faces, strangers(faces)[1])[:3],
        "carol": photos(faces, strangers(faces)[2])[:5],
    }
    for folder, files in layout.items():
        (box / folder).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, box / folder / f.name)
    shutil.copy2(held[bob][0], box / "photo.jpg")
    shutil.copy2(models_dir / "carphone_pristine.mp4", box / "clip.mp4")
    return box


def _run(box: Path, command: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{box / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "XDG_DATA_HOME": str(box / ".local" / "share"),  # scan/find's default index
        "EDGE_TEST_DATA": str(DATA),  # tests/doorbell.py's photos
    }
    return subprocess.run(
        ["bash", "-c", command], cwd=box, env=env, capture_output=True, text=True, timeout=900
    )


def _check_ran(proc: subprocess.CompletedProcess, command: str, box: Path) -> None:
    assert proc.returncode == 0, f"{command}\n{proc.stderr[-3000:]}"
    assert EXPECT.get(command, "").format(box=box) in proc.stdout, proc.stdout[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if "-m edge" in command and "--help" not in command:  # stdout: only the JSON lines
        for line in proc.stdout.splitlines():
            json.loads(line)


@pytest.mark.parametrize(
    "where,command", [c for c in COMMANDS if c[1] in RUN], ids=lambda v: v.replace(" ", "_")
)
def test_documented_command_runs(sandbox, where, command):
    _check_ran(_run(sandbox, command), command, sandbox)


@pytest.mark.slow
@pytest.mark.parametrize(
    "where,command", [c for c in COMMANDS if c[1] in SLOW], ids=lambda v: v.replace(" ", "_")
)
def test_documented_slow_command_runs(sandbox, where, command):
    _check_ran(_run(sandbox, command), command, sandbox)


def _parse(module: str, argv: list[str]) -> str:
    """The module's own parser on argv: its --help text, or '' when argv parses."""
    if module == "edge":
        from edge.__main__ import parse_args
    else:
        from convert.__main__ import parse_args
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 0 and "--help" in argv, f"{module} {argv}: exit {exc.code}"
    return out.getvalue()


def _script_help(tokens: list[str]) -> str:
    script = ROOT / tokens[0]
    assert script.is_file() and os.access(script, os.X_OK), f"{script} is not an executable"
    proc = subprocess.run([str(script), "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    "where,command", [c for c in COMMANDS if c[1] in CHECK], ids=lambda v: v.replace(" ", "_")
)
def test_documented_command_parses(where, command):
    tokens = shlex.split(command)
    if tokens[0] == "sudo":
        tokens = tokens[1:]
    options = [t for t in tokens if t.startswith("--")]
    if tokens[0] == "journalctl":
        assert (ROOT / "systemd" / f"{tokens[tokens.index('-u') + 1]}.service").is_file()
    elif tokens[0].endswith("python") and tokens[1] == "-m":
        _parse(tokens[2], tokens[3:])
    elif tokens[0].endswith("python"):
        proc = subprocess.run(
            [sys.executable, tokens[1], "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        assert all(o in proc.stdout for o in options), (options, proc.stdout)
    elif options:
        text = _script_help(tokens)
        assert all(o in text for o in options), (options, text)
    else:
        assert os.access(ROOT / tokens[0], os.X_OK), f"{tokens[0]} is not an executable"


def _synopses() -> list[tuple[str, str]]:
    return [
        (f"{doc}:{line}", text)
        for doc, line, lang, body in _blocks()
        if lang == "text"
        for text in body.splitlines()
        if text.startswith("python ")
    ]


@pytest.mark.parametrize("where,line", _synopses(), ids=lambda v: v.split("#")[0][:60])
def test_synopsis_options_exist(where, line):
    tokens = line.split("#")[0].split()
    options = sorted(set(re.findall(r"--[a-z][a-z-]*", line.split("#")[0])))
    if tokens[1] == "-m":
        sub = tokens[3] if len(tokens) > 3 and tokens[3].isalpha() and tokens[3].islower() else None
        text = _parse(tokens[2], [*([sub] if sub else []), "--help"])
    else:
        proc = subprocess.run(
            [sys.executable, tokens[1], "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
    missing = [o for o in options if o not in text]
    assert not missing, f"{where}: {line}\noptions not in --help: {missing}"
