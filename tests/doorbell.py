"""Compose a "doorbell" test clip from ../shared/data/faces, with its ground-truth timeline.

One person at a time walks in (sliding and growing), stays a few seconds, walks out; known
people use their held-out photos only (tests.splits), strangers their own photos; no-face
spells separate the visits. Also scores a run's events against the timeline.

    python tests/doorbell.py --out DIR [--visits 20] [--seed N] [--zoom 2] [--ir]

tests/closeup.py builds its close-up version (zoom 2); zoom 0.5 is the far one.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

if __package__ in (None, ""):  # run as a script: make `tests.splits` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import splits  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 15
ENTER_S, LEAVE_S = 0.8, 0.8  # sliding in / out
STAY_S = (2.5, 4.0)  # standing still-ish in front of the door
GAP_S = (2.0, 3.0)  # no-face spell between visits
LEAD_S, TAIL_S = 1.0, 7.0  # empty scene before the first and after the last visit
# A second person's face shows next to the visitor's: the timeline says one person at a time.
MULTI_FACE = {"Ariel_Sharon_0009.jpg"}
BACKGROUNDS = ("brick.png", "coffee.png", "grass.png", "text.png", "moon.png")


def _background(data_dir: Path, rng: random.Random) -> np.ndarray:
    """A static, blurred no-face scene at the clip size."""
    path = data_dir / "no_face" / rng.choice(BACKGROUNDS)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"error: cannot read background {path}")
    img = cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(img, (0, 0), 4)


@functools.cache
def _feather_mask(size: int) -> np.ndarray:
    """An elliptical alpha mask with a soft edge, (size, size, 1) float32 in 0..1."""
    mask = np.zeros((size, size), np.float32)
    c = size // 2
    cv2.ellipse(mask, (c, c), (int(size * 0.36), int(size * 0.46)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), size * 0.04)[..., None]


def _paste(frame: np.ndarray, photo: np.ndarray, cx: float, cy: float, size: int) -> bool:
    """Alpha-blend `photo` scaled to size x size centred at (cx, cy); False if nothing shows."""
    img = cv2.resize(photo, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    mask = _feather_mask(size)
    x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + size, WIDTH), min(y0 + size, HEIGHT)
    if fx1 <= fx0 or fy1 <= fy0:
        return False
    sub = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    a = mask[sub]
    frame[fy0:fy1, fx0:fx1] = (img[sub] * a + region * (1 - a)).astype(np.uint8)
    return True


def _face_inside(cx: float, cy: float, size: int) -> bool:
    """The face (LFW: the middle half of the photo) is wholly in the frame."""
    half = size * 0.25
    return cx - half >= 0 and cx + half <= WIDTH and cy - half >= 0 and cy + half <= HEIGHT


def plan_visits(data_dir: Path, visits: int, seed: int) -> list[dict[str, Any]]:
    """Who comes when: about a third strangers, never the same person twice in a row."""
    rng = random.Random(seed)
    faces = data_dir / "faces"
    known, strangers = splits.known(faces), splits.strangers(faces)
    n_strangers = max(1, round(visits * 0.3)) if visits > 1 else 0
    kinds = [False] * n_strangers + [True] * (visits - n_strangers)
    rng.shuffle(kinds)
    plan, last = [], None
    for is_known in kinds:
        pool = [p for p in (known if is_known else strangers) if p != last]
        person = rng.choice(pool)
        photo = rng.choice(
            [p for p in splits.heldout_photos(faces, person) if p.name not in MULTI_FACE]
        )
        plan.append(
            {
                "person": person,
                "known": is_known,
                "photo": str(photo),
                "stay_s": rng.uniform(*STAY_S),
                "gap_s": rng.uniform(*GAP_S),
                "from_left": rng.random() < 0.5,
                "size": rng.randint(250, 360),
                "cx": rng.uniform(0.4, 0.6) * WIDTH,
                "cy": rng.uniform(0.42, 0.55) * HEIGHT,
            }
        )
        last = person
    return plan


def _positions(v: dict[str, Any]) -> list[tuple[float, float, int]]:
    """(cx, cy, size) per frame of one visit: enter, stay with a little sway, leave."""
    n_in, n_out = round(ENTER_S * FPS), round(LEAVE_S * FPS)
    n_stay = round(v["stay_s"] * FPS)
    size, cx, cy = v["size"], v["cx"], v["cy"]
    edge = -size * 0.45 if v["from_left"] else WIDTH + size * 0.45
    exit_edge = WIDTH + size * 0.45 if v["from_left"] else -size * 0.45
    out = []
    for i in range(n_in):
        t = (i + 1) / n_in
        out.append((edge + (cx - edge) * t, cy + 20 * (1 - t), int(size * (0.75 + 0.25 * t))))
    for i in range(n_stay):
        phase = 2 * np.pi * i / (FPS * 2.5)
        out.append((cx + 6 * np.sin(phase), cy + 3 * np.sin(2 * phase), size))
    for i in range(n_out):
        t = (i + 1) / n_out
        out.append((cx + (exit_edge - cx) * t, cy, int(size * (1 - 0.15 * t))))
    return out


def _zoomed(cx: float, cy: float, size: int, zoom: float) -> tuple[float, float, int]:
    """(cx, cy, size) as seen by a camera zoomed `zoom` x on the middle of the door."""
    return (
        (cx - WIDTH / 2) * zoom + WIDTH / 2,
        (cy - HEIGHT / 2) * zoom + HEIGHT / 2,
        max(2, round(size * zoom)),
    )


def _zoom_background(image: np.ndarray, zoom: float) -> np.ndarray:
    """The middle 1/zoom of a (static) background blown up to the clip size (zoom > 1 only)."""
    if zoom <= 1.0:
        return image
    w, h = round(WIDTH / zoom), round(HEIGHT / zoom)
    x0, y0 = (WIDTH - w) // 2, (HEIGHT - h) // 2
    return cv2.resize(image[y0 : y0 + h, x0 : x0 + w], (WIDTH, HEIGHT))


def infrared(frame: np.ndarray) -> np.ndarray:
    """A night-vision look: grey, washed out (low contrast, lifted blacks), still 3 channels."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gray = np.clip(gray * 0.6 + 60.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def make_clip(
    data_dir: Path,
    out: Path,
    visits: int = 20,
    seed: int = 0,
    zoom: float = 1.0,
    ir: bool = False,
) -> dict[str, Any]:
    """Write out/clip.mp4 and out/timeline.json; returns the timeline.

    `zoom` scales the scene about the frame's middle (2: a close-up camera, faces half the
    frame or more and some cut by its edge; 0.5: a far one); `ir` renders it grey and washed
    out like a night-vision camera. The visits are the same for every zoom and look.
    """
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    background = _zoom_background(_background(data_dir, rng), zoom)
    clip = out / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"error: cannot write {clip}")
    frame_no = 0
    # Sensor noise, cycled from a few precomputed fields (drawing it per frame is slow).
    noises = [nprng.normal(0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.int16) for _ in range(7)]

    def write(frame: np.ndarray) -> None:
        nonlocal frame_no
        if ir:
            frame = infrared(frame)
        noisy = frame.astype(np.int16) + noises[frame_no % len(noises)]
        writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
        frame_no += 1

    def empty(seconds: float) -> None:
        for _ in range(round(seconds * FPS)):
            write(background.copy())

    timeline = []
    empty(LEAD_S)
    for v in plan_visits(data_dir, visits, seed + 1):
        photo = cv2.imread(v["photo"], cv2.IMREAD_COLOR)
        first = last = face_first = None
        for place in _positions(v):
            cx, cy, size = _zoomed(*place, zoom)
            frame = background.copy()
            if _paste(frame, photo, cx, cy, size):
                first = frame_no if first is None else first
                last = frame_no
            if face_first is None and _face_inside(cx, cy, size):
                face_first = frame_no
            write(frame)
        timeline.append(
            {
                "person": v["person"],
                "known": v["known"],
                "photo": Path(v["photo"]).name,
                "first_frame": first,
                "face_frame": face_first,
                "last_frame": last,
            }
        )
        empty(v["gap_s"])
    empty(TAIL_S - GAP_S[0])
    writer.release()
    result = {
        "zoom": zoom,
        "ir": ir,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "frames": frame_no,
        "visits": timeline,
    }
    (out / "timeline.json").write_text(json.dumps(result, indent=1))
    return result


def _visit_at(frame: int, visits: list[dict[str, Any]]) -> int | None:
    for i, v in enumerate(visits):
        if v["first_frame"] <= frame <= v["last_frame"]:
            return i
    return None


def score_events(events: list[dict[str, Any]], timeline: dict[str, Any]) -> dict[str, Any]:
    """Event precision/recall against the timeline.

    Correct: `recognized` with the visitor's name (known visit) or `unknown` (stranger visit),
    emitted during the visit, first of its kind. Everything else is a false positive: a name
    for a stranger, unknown for a known person, a duplicate, an event outside every visit.
    `left` is correct when it names the visitor (null for strangers), comes after the visit's
    last frame, and that visit has no `left` yet.
    """
    visits = timeline["visits"]
    hit = [False] * len(visits)
    correct = false_pos = strangers_named = outside = 0
    left_hit = [False] * len(visits)
    left_correct = left_false = 0
    for e in sorted(events, key=lambda e: e["frame"]):
        if e["type"] == "left":
            cands = [
                i
                for i, v in enumerate(visits)
                if not left_hit[i]
                and v["last_frame"] <= e["frame"]
                and ((v["person"] == e["name"]) if v["known"] else e["name"] is None)
            ]
            if cands:
                left_hit[cands[0]] = True
                left_correct += 1
            else:
                left_false += 1
            continue
        i = _visit_at(e["frame"], visits)
        if i is None:
            outside += 1
            false_pos += 1
            continue
        v = visits[i]
        if not v["known"] and e["type"] == "recognized":
            strangers_named += 1
        ok = (
            (e["type"] == "recognized" and v["known"] and e["name"] == v["person"])
            or (e["type"] == "unknown" and not v["known"])
        ) and not hit[i]
        if ok:
            hit[i] = True
            correct += 1
        else:
            false_pos += 1
    n_events = correct + false_pos
    n_left = left_correct + left_false
    return {
        "visits": len(visits),
        "events": n_events,
        "correct": correct,
        "false_positives": false_pos,
        "outside_visits": outside,
        "strangers_named": strangers_named,
        "missed": [visits[i]["person"] for i in range(len(visits)) if not hit[i]],
        "precision": round(correct / n_events, 4) if n_events else 1.0,
        "recall": round(sum(hit) / len(visits), 4) if visits else 1.0,
        "left_precision": round(left_correct / n_left, 4) if n_left else 1.0,
        "left_recall": round(sum(left_hit) / len(visits), 4) if visits else 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: write a clip and its timeline, print the timeline summary."""
    from tests.paths import DATA  # not conftest: this script runs without pytest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for clip.mp4 + timeline.json")
    p.add_argument("--visits", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=DATA, help="shared data folder")
    p.add_argument("--zoom", type=float, default=1.0, help="2 = close-up camera, 0.5 = far")
    p.add_argument("--ir", action="store_true", help="grey, washed-out night-vision look")
    args = p.parse_args(argv)
    if not (args.data / "faces").is_dir():
        print(f"error: no faces folder under {args.data}", file=sys.stderr)
        return 2
    tl = make_clip(args.data, args.out, args.visits, args.seed, args.zoom, args.ir)
    known = sum(v["known"] for v in tl["visits"])
    print(
        f"{args.out / 'clip.mp4'}: {tl['frames']} frames ({tl['frames'] / FPS:.1f} s), "
        f"{len(tl['visits'])} visits ({known} known, {len(tl['visits']) - known} strangers)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
