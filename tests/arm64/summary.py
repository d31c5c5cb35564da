"""Check and summarize what tests/arm64/run.sh collected from the arm64 root.

Usage: summary.py WORK_DIR TOTAL_S PYTHON_VERSION COMMIT [OUT.json]
Exit 1 with one line per problem when the runs inside the root did not do their job.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FRAMES = int(os.environ.get("FRAMES", "60"))  # run.sh runs `python -m edge --max-frames 60`
KNOWN = "Ariel_Sharon"  # run.sh identifies one of his held-out photos, then a stranger's


def _json_lines(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _names(output: list[dict]) -> list[str | None]:
    return [(o["faces"][0]["name"] if o["faces"] else None) for o in output]


def problems(out: dict[str, list[dict] | None], events: list[dict], stats: dict) -> list[str]:
    """What is wrong with the collected output (empty when all is well)."""
    found = []
    if stats.get("frames_processed") != FRAMES:
        found.append(f"frames_processed is {stats.get('frames_processed')}, expected {FRAMES}")
    if not any(e.get("type") in ("recognized", "unknown") for e in events):
        found.append("no recognized/unknown event for the face in the sample clip")
    for name in ("res10", "blazeface"):
        if out[name] is not None and not (out[name] and out[name][0]["faces"]):
            found.append(f"{name}: found no face in the test photo")
    if out["identify"] is not None and _names(out["identify"]) != [KNOWN, "unknown"]:
        found.append(f"identify: named {_names(out['identify'])}, expected [{KNOWN}, unknown]")
    for i in (1, 2, 3):  # --first-model: each enrolment adds a person to the model made here
        got = out.get(f"enroll{i}")
        if got is not None and not (got and got[0].get("people") == i):
            found.append(f"edge enroll ({i}): {got}, expected a model of {i} people")
    return found


def main(argv: list[str]) -> int:
    """Check the collected output; write the summary JSON when asked."""
    work, total, python, commit = Path(argv[0]), float(argv[1]), argv[2], argv[3]
    steps = [line.split("\t") for line in (work / "steps.tsv").read_text().splitlines()]
    stats = json.loads((work / "stats.json").read_text())
    names = ("res10", "blazeface", "identify", "enroll1", "enroll2", "enroll3")
    out = {name: _json_lines(work / f"{name}.out") for name in names}
    out["backbone"] = _json_lines(work / "backbone.out")
    picam = work / "picamera2.out"
    events = _json_lines(work / "events.out") or []
    if len(argv) > 4:
        summary = {
            "arch": "aarch64",
            "python": python,
            "commit": commit,
            "total_s": total,
            "steps": {name: float(secs) for name, secs, _ in steps},
            "picamera2": picam.read_text().strip() if picam.exists() else None,
            **out,
            "events": events,
            "stats": stats,
        }
        Path(argv[4]).write_text(json.dumps(summary, indent=1) + "\n")
    found = problems(out, events, stats)
    for problem in found:
        sys.stderr.write(f"[arm64] error: {problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
