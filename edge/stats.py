"""Run statistics: per-stage timings, frame counters, appear-to-event latency; bounded memory."""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("capture", "detect", "track", "recognize", "publish")
WINDOW = 5000  # samples kept per stage (a long run must not grow)


def _summary(values: Any, scale: float, digits: int) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    arr = np.fromiter(values, dtype=np.float64)
    return {
        "median": round(float(np.median(arr)) * scale, digits),
        "p95": round(float(np.percentile(arr, 95)) * scale, digits),
    }


def cpu_temperature() -> float | None:
    """SoC temperature in degrees C where the kernel exposes it (Raspberry Pi), else None."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None


class Rate:
    """Frames per second over the last `window_s`: frames counted over the time they took."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> float:
        """Count one frame at `now` (default: the monotonic clock); returns the rate."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while len(self._times) > 2 and now - self._times[0] > self.window_s:
            self._times.popleft()
        span = now - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class Stats:
    """Collects what --stats-json and the periodic stats report."""

    def __init__(self) -> None:
        self.start_wall = time.time()
        self._start = time.perf_counter()
        self.stages: dict[str, deque[float]] = {s: deque(maxlen=WINDOW) for s in STAGES}
        # CPU seconds of the whole process per stage: what the stage costs without contention
        self.stages_cpu: dict[str, deque[float]] = {s: deque(maxlen=WINDOW) for s in STAGES}
        self.latency: deque[float] = deque(maxlen=WINDOW)
        self.runs = dict.fromkeys(STAGES, 0)  # whole run: how often each stage ran
        self.cpu_s = dict.fromkeys(STAGES, 0.0)  # whole run: process CPU seconds per stage
        self.frames_processed = 0
        self.events = 0
        self.source_t0: float | None = None  # wall time of source time 0 (first frame's clock)
        self._mark = (self._start, 0)  # (perf time, frames processed) at the last period

    @contextmanager
    def stage(self, name: str):
        """Time the enclosed block as one sample of `name`."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0, time.process_time() - c0)

    def add(self, name: str, seconds: float, cpu_seconds: float | None = None) -> None:
        """Record one sample of `name` measured elsewhere."""
        self.stages[name].append(seconds)
        self.runs[name] += 1
        if cpu_seconds is not None:
            self.stages_cpu[name].append(cpu_seconds)
            self.cpu_s[name] += cpu_seconds

    def event_latency(self, seconds: float) -> None:
        """Wall seconds from a person's first captured frame to their event."""
        self.latency.append(seconds)

    def wall_s(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._start

    def period(self) -> float:
        """Frames processed per second since the previous call (the periodic FPS)."""
        now = time.perf_counter()
        t0, n0 = self._mark
        self._mark = (now, self.frames_processed)
        return (self.frames_processed - n0) / (now - t0) if now > t0 else 0.0

    def summary(
        self, frames_read: int, frames_dropped: int, crop_seconds: Any = ()
    ) -> dict[str, Any]:
        """The --stats-json object; crop_seconds: per-crop recognition times, if any."""
        wall = self.wall_s()
        lat = _summary(self.latency, 1.0, 3)
        return {
            "frames_read": int(frames_read),
            "frames_processed": self.frames_processed,
            "frames_dropped": int(frames_dropped),
            "wall_s": round(wall, 3),
            "fps": round(self.frames_processed / wall, 2) if wall > 0 else 0.0,
            "stages": {
                s: {f"{k}_ms": v for k, v in _summary(self.stages[s], 1000.0, 2).items()}
                for s in STAGES
            },
            "stages_cpu": {
                s: {f"{k}_ms": v for k, v in _summary(self.stages_cpu[s], 1000.0, 2).items()}
                for s in STAGES
                if self.stages_cpu[s]
            },
            "totals": {s: {"runs": self.runs[s], "cpu_s": round(self.cpu_s[s], 3)} for s in STAGES},
            "recognize_per_crop": {
                f"{k}_ms": v for k, v in _summary(crop_seconds, 1000.0, 2).items()
            }
            | {"count": len(crop_seconds)},
            "events": self.events,
            "latency_s": {"median": lat["median"], "p95": lat["p95"], "count": len(self.latency)},
            "start_time": round(self.start_wall, 3),
            "source_t0": None if self.source_t0 is None else round(self.source_t0, 3),
        }
