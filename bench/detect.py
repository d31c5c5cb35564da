"""Detection benchmark: precision/recall, no-face false positives, ms per image, per mode.

    .venv/bin/python bench/detect.py [--widths 320 640] [--repeat 3] [--tune]

Data: ../shared/data/detection (gt_boxes.csv), no_face/, video/ ($EDGE_TEST_DATA overrides).
Detectors run interleaved image by image so timings are side by side; ms is the median over
images of the fastest of --repeat runs. Prints tables; writes bench/results/detect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.config import DetectConfig, load_config  # noqa: E402
from edge.detect import Detector, Face, create_detector  # noqa: E402
from edge.detectors.res10 import MEAN, Res10Detector  # noqa: E402
from edge.progress import progress  # noqa: E402
from tests.groundtruth import IOU_MATCH, load_gt, match  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
MODES = {  # name -> (method, confirmer)
    "haar": ("haar", None),
    "dnn-res10": ("dnn", "res10"),
    "dnn-blazeface": ("dnn", "blazeface"),
    "two-stage+res10": ("two-stage", "res10"),
    "two-stage+blazeface": ("two-stage", "blazeface"),
}


class Res10Square(Detector):
    """Reference only: res10 the classic way, whole frame squashed to 300x300."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.inner = Res10Detector(cfg)

    def detect(self, frame: np.ndarray, small: np.ndarray | None = None) -> list[Face]:
        h, w = frame.shape[:2]
        self.inner.net.setInput(cv2.dnn.blobFromImage(frame, 1.0, (300, 300), MEAN))
        return self.inner._faces(self.inner.net.forward(), [(w, h)])[0]


def timed(detector: Detector, image: np.ndarray, repeat: int) -> tuple[list[Face], float]:
    """Faces and the fastest of `repeat` runs, ms."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        faces = detector.detect(image)
        best = min(best, (time.perf_counter() - start) * 1000)
    return faces, best


def doorbell_frames(every: int) -> tuple[list[np.ndarray], list[bool | None]]:
    """Every `every`th frame of the doorbell clip (tests/doorbell.py, 640x480) and whether a
    face is fully in view (True), the scene is empty (False) or a face is entering (None)."""
    from tests.doorbell import make_clip

    with tempfile.TemporaryDirectory() as tmp:
        timeline = make_clip(DATA, Path(tmp), visits=6, seed=0)
        cap = cv2.VideoCapture(str(Path(tmp) / "clip.mp4"))
        frames, truth, index = [], [], 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every == 0:
                state: bool | None = False
                for v in timeline["visits"]:
                    if v["first_frame"] + 8 <= index <= v["last_frame"] - 8:
                        state = True
                    elif v["first_frame"] - 1 <= index <= v["last_frame"] + 1:
                        state = None
                frames.append(frame)
                truth.append(state)
            index += 1
        cap.release()
    return frames, truth


def run_doorbell(detectors: dict[str, Detector], frames, truth, repeat: int) -> dict:
    """Share of face-in-view frames with a face found, of empty frames with one, ms/frame."""
    out = {}
    for name, det in detectors.items():
        hit = false = 0
        times = []
        for frame, state in progress(
            list(zip(frames, truth, strict=True)), desc=f"doorbell {name}", unit="frame"
        ):
            faces, ms = timed(det, frame, repeat)
            times.append(ms)
            hit += bool(faces) and state is True
            false += bool(faces) and state is False
        out[name] = {
            "face_frames_found": round(hit / max(1, truth.count(True)), 3),
            "empty_frames_with_face": round(false / max(1, truth.count(False)), 3),
            "frames": len(frames),
            "ms_median": round(statistics.median(times), 1),
        }
    return out


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` frames evenly spaced through a video."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, max(0, total - 1), count).astype(int).tolist())
    frames, index = [], 0
    while len(frames) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            frames.append(frame)
        index += 1
    cap.release()
    return frames


def evaluate(
    detectors: dict[str, Detector],
    photos: list[tuple[np.ndarray, list]],
    no_face: list[np.ndarray],
    repeat: int,
) -> dict[str, dict]:
    """Run every detector on every image, interleaved; accuracy and timing per detector."""
    stats = {k: {"tp": 0, "fp": 0, "fn": 0, "ms": [], "noface_fp": 0} for k in detectors}
    for image, truth in progress(photos, desc="photos", unit="photo"):
        for name, det in detectors.items():
            faces, ms = timed(det, image, repeat)
            tp, fp, fn = match(faces, truth)
            s = stats[name]
            s["tp"] += tp
            s["fp"] += fp
            s["fn"] += fn
            s["ms"].append(ms)
    for image in progress(no_face, desc="no-face photos", unit="photo"):
        for name, det in detectors.items():
            stats[name]["noface_fp"] += len(det.detect(image))
    out = {}
    for name, s in stats.items():
        tp, fp, fn = s["tp"], s["fp"], s["fn"]
        out[name] = {
            "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "fp_per_noface_image": round(s["noface_fp"] / max(1, len(no_face)), 3),
            "noface_fp": s["noface_fp"],
            "ms_median": round(statistics.median(s["ms"]), 1),
        }
    return out


def run_videos(detectors: dict[str, Detector], clips: dict[str, list], repeat: int) -> dict:
    """Faces per frame and ms per frame on sampled video frames."""
    out: dict[str, dict] = {}
    for clip, frames in clips.items():
        for name, det in detectors.items():
            counts, times = [], []
            for frame in progress(frames, desc=f"{clip} {name}", unit="frame"):
                faces, ms = timed(det, frame, repeat)
                counts.append(len(faces))
                times.append(ms)
            out.setdefault(name, {})[clip] = {
                "frames": len(frames),
                "faces_per_frame": round(float(np.mean(counts)), 2),
                "frames_with_face": round(float(np.mean([c > 0 for c in counts])), 2),
                "ms_median": round(statistics.median(times), 1),
            }
    return out


def tuning(base: DetectConfig, photos, no_face, repeat: int) -> list[dict]:
    """Two-stage with the configured confirmer, one setting changed at a time around the defaults."""
    variants = [("defaults", {})]
    for key, values in {
        "haar.min_neighbors": (1, 2, 3, 5),
        "haar.scale_factor": (1.05, 1.1, 1.2),
        "haar.min_size": (24, 32, 40),
        "max_proposals": (6, 12, 24),
        "margin": (0.3, 0.6, 1.0, 1.5),
        "confidence": (0.3, 0.5, 0.7),
    }.items():
        for value in values:
            variants.append((f"{key}={value}", {key: value}))
    rows = []
    for label, change in variants:
        cfg = base
        for key, value in change.items():
            if key.startswith("haar."):
                cfg = replace(cfg, haar=replace(cfg.haar, **{key[5:]: value}))
            else:
                cfg = replace(cfg, **{key: value})
        det = {label: create_detector(cfg, "two-stage")}
        rows.append({"setting": label, **evaluate(det, photos, no_face, repeat)[label]})
    return rows


def write_json(path: str | Path, result: dict) -> None:
    """Write a benchmark's result as indented JSON (folders made) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


def table(rows: list[dict], cols: list[str]) -> str:
    """A plain fixed-width table."""
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    for r in rows:
        lines.append(
            "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths, strict=True))
        )
    return "\n".join(lines)


def main() -> int:
    """Run the benchmark, print tables, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[320, 640])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--repeat", type=int, default=3, help="runs per image; the fastest counts")
    ap.add_argument("--video-frames", type=int, default=30, help="frames sampled per video")
    ap.add_argument("--tune", action="store_true", help="also sweep two-stage settings")
    ap.add_argument("--config", help="config YAML (default: embedded defaults)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "detect.json"))
    args = ap.parse_args()

    from edge.images import read_image

    gt = load_gt(DATA / "detection")
    photos = [(read_image(DATA / "detection" / name), boxes) for name, boxes in sorted(gt.items())]
    no_face = [read_image(p) for p in sorted((DATA / "no_face").iterdir())]
    clips = {
        p.name: video_frames(p, args.video_frames) for p in sorted((DATA / "video").glob("*.mp4"))
    }
    door = doorbell_frames(every=6)
    base = load_config(args.config).detect
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "opencv": cv2.__version__,
        },
        "data": {
            "photos": len(photos),
            "faces": sum(len(b) for _, b in photos),
            "no_face": len(no_face),
        },
        "settings": {"repeat": args.repeat, "iou_match": IOU_MATCH, "defaults": repr(base)},
        "photos": [],
        "doorbell": [],
        "video": [],
    }
    cv2.setNumThreads(base.threads)
    for width in args.widths:
        print(f"width {width}: photos, doorbell, videos ...", file=sys.stderr, flush=True)
        cfg = replace(base, downscale_width=width)
        dets: dict[str, Detector] = {m: create_detector(cfg, *MODES[m]) for m in args.modes}
        if width == args.widths[0]:
            dets["ref:res10-300x300-full-frame"] = Res10Square(cfg)
        for name, row in evaluate(dets, photos, no_face, args.repeat).items():
            result["photos"].append({"mode": name, "width": width, **row})
        for name, row in run_doorbell(dets, *door, args.repeat).items():
            result["doorbell"].append({"mode": name, "width": width, **row})
        for name, per_clip in run_videos(dets, clips, args.repeat).items():
            for clip, row in per_clip.items():
                result["video"].append({"mode": name, "width": width, "clip": clip, **row})
    print(f"photos: {result['data']} (precision/recall at IoU >= {IOU_MATCH})")
    print(
        table(
            result["photos"],
            [
                "mode",
                "width",
                "precision",
                "recall",
                "tp",
                "fp",
                "fn",
                "fp_per_noface_image",
                "ms_median",
            ],
        )
    )
    print(f"\ndoorbell clip (tests/doorbell.py, 640x480, 6 visits): {len(door[0])} frames")
    print(
        table(
            result["doorbell"],
            ["mode", "width", "face_frames_found", "empty_frames_with_face", "ms_median"],
        )
    )
    print(f"\nvideo: {args.video_frames} frames sampled per clip")
    print(
        table(
            result["video"],
            ["mode", "width", "clip", "faces_per_frame", "frames_with_face", "ms_median"],
        )
    )
    if args.tune:
        cfg = replace(base, downscale_width=args.widths[0])
        result["tuning"] = tuning(cfg, photos, no_face, args.repeat)
        print(
            f"\ntuning: two-stage+{base.confirmer} at width {args.widths[0]}, one change at a time"
        )
        print(
            table(
                result["tuning"],
                ["setting", "precision", "recall", "fp", "fp_per_noface_image", "ms_median"],
            )
        )
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
