"""Check and summarize what tests/arm64/run.sh collected from the arm64 root.

Usage: summary.py WORK_DIR TOTAL_S PYTHON_VERSION COMMIT [OUT.json]
Exit 1 with one line per problem when the runs inside the root did not do their job.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FRAMES = 30  # run.sh runs `python -m edge --max-frames 30`


def _json_lines(path: Path) -> list[dict] | None:
    if not path.exists():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def problems(detect: list[dict] | None, events: list[dict], stats: dict) -> list[str]:
    """What is wrong with the collected output (empty when all is well)."""
    found = []
    if stats.get("frames_processed") != FRAMES:
        found.append(f"frames_processed is {stats.get('frames_processed')}, expected {FRAMES}")
    if not any(e.get("type") in ("recognized", "unknown") for e in events):
        found.append("no recognized/unknown event for the face in the sample clip")
    if detect is not None and not (detect and detect[0]["faces"]):
        found.append("edge detect found no face in the test photo")
    return found


def main(argv: list[str]) -> int:
    """Check the collected output; write the summary JSON when asked."""
    work, total, python, commit = Path(argv[0]), float(argv[1]), argv[2], argv[3]
    steps = [line.split("\t") for line in (work / "steps.tsv").read_text().splitlines()]
    stats = json.loads((work / "stats.json").read_text())
    detect = _json_lines(work / "detect.out")
    events = _json_lines(work / "events.out") or []
    if len(argv) > 4:
        summary = {
            "arch": "aarch64",
            "python": python,
            "commit": commit,
            "total_s": total,
            "steps": {name: float(secs) for name, secs, _ in steps},
            "detect": detect,
            "events": events,
            "stats": stats,
        }
        Path(argv[4]).write_text(json.dumps(summary, indent=1) + "\n")
    found = problems(detect, events, stats)
    for problem in found:
        sys.stderr.write(f"[arm64] error: {problem}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
