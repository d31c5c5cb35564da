"""One camera's loop: capture -> detect -> track -> recognize -> decide, in its own thread;
its events and frames go to the runner, which publishes them."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable

from edge.capture import Frame, Source, open_source
from edge.config import Config
from edge.decide import Emitted, Judge, Presence
from edge.errors import UserError
from edge.motion import SceneWatch
from edge.pipeline import Loop, Stages
from edge.publish import Output, Sink
from edge.stats import Rate, Stats
from edge.track import Tracker

log = logging.getLogger(__name__)

# deliver(camera, events, frame) publishes one frame's events; False: stop (preview closed)
Deliver = Callable[["CameraLoop", list[Emitted], Frame], bool]


class CameraLoop:
    """One camera's state: its source, tracker, judge, presence and stats."""

    # The one-camera loop's own code for a frame, its events and its picture: every camera
    # runs exactly that, with `outputs` seen through CameraView.
    _step = Loop._step
    _detect = Loop._detect
    _publish_now = Loop._publish
    _show = Loop._show

    def __init__(
        self,
        cfg: Config,
        source: Source | None,
        stages: Stages,
        sink: Sink,
        deliver: Deliver,
        outputs: list[Output],
        status: Callable[[], dict],
        realtime: bool | None = None,
    ) -> None:
        """`source` None: a live camera that could not be opened yet (retried in run());
        `outputs` the shared ones, `status()` the Status page's dict."""
        self.cfg, self.name = cfg, cfg.camera_name()
        self.source, self.stages, self.sink, self.deliver = source, stages, sink, deliver
        self.outputs = [CameraView(out, self.name) for out in outputs]
        self._status = status
        self._fps = Rate()  # for the picture
        self.realtime = realtime
        self.tracker = Tracker(cfg.track)
        self.scene = SceneWatch()
        self.judge = Judge(cfg.recognize, stages.model, stages.aligner)
        self.presence = Presence(cfg.decide)
        self.stats = Stats()
        self.last: Frame | None = None
        self._pending: list[Emitted] = []
        self._detect_count = 0
        self._switched_off = sink.switched_off

    @property
    def frames_read(self) -> int:
        return self.source.frames_read if self.source is not None else 0

    @property
    def frames_dropped(self) -> int:
        return self.source.frames_dropped if self.source is not None else 0

    @property
    def lost(self) -> bool:
        """True while the camera is gone (not opened yet, or being reopened)."""
        return self.source is None or bool(getattr(self.source, "lost", False))

    def _publish(self, emitted: list[Emitted]) -> None:  # called by _step
        self._pending.extend(emitted)

    def snapshot(self) -> Stats:
        """A copy of the stats another thread may read while this camera's goes on (a
        deque's copy() is one step under the GIL; iterating the live one is not)."""
        snap = copy.copy(self.stats)
        snap.stages = {k: v.copy() for k, v in self.stats.stages.items()}
        snap.stages_cpu = {k: v.copy() for k, v in self.stats.stages_cpu.items()}
        snap.latency, snap.runs, snap.cpu_s = (
            self.stats.latency.copy(),
            dict(self.stats.runs),
            dict(self.stats.cpu_s),
        )
        return snap

    def summary(self, snap: Stats | None = None) -> dict:
        """This camera's --stats-json object (from `snap`, a snapshot(), when given)."""
        snap = snap or self.snapshot()
        s = snap.summary(self.frames_read, self.frames_dropped, self.judge.crop_seconds.copy())
        return s | {"camera": self.name, "lost": self.lost}

    def open(self, stop: threading.Event) -> bool:
        """Open a camera that was absent at start, with backoff; False when stopped first."""
        backoff = 0.5
        while self.source is None:
            try:
                self.source = open_source(
                    self.cfg.camera, self.realtime, lores_width=self.cfg.detect.downscale_width
                )
            except UserError as exc:
                log.debug("camera %s: %s; next try in %.1f s", self.name, exc, backoff)
                if stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, self.cfg.camera.reopen_backoff_max_s)
        log.warning("camera back: %s", self.name)
        return True

    def run(self, stop: threading.Event, limit: int | None = None) -> None:
        """Read and process frames until the source ends, `limit` frames or `stop`."""
        if self.source is None and not self.open(stop):
            return
        while not stop.is_set():
            if limit and self.source.frames_read >= limit:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                frame = self.source.read()
            except UserError as exc:  # picamera2 failed: this camera alone is reopened
                log.warning("camera lost: %s (%s); reopening", self.name, exc)
                self.source.close()
                self.source = None
                if not self.open(stop):
                    break
                continue
            if frame is None:
                break
            self.stats.add("capture", time.perf_counter() - t0, time.process_time() - c0)
            if self.last is None:
                self.stats.source_t0 = frame.wall_time - frame.source_time
            self.last = frame
            self._step(frame)
            events, self._pending = self._pending, []
            if not self.deliver(self, events, frame):
                stop.set()
                break

    def leave_all(self) -> list[Emitted]:
        """`left` for everyone this camera still holds (its source ended, or shutdown)."""
        return self.presence.leave_all(self.last) if self.last is not None else []


class CameraView:
    """A shared output as one camera's loop sees it: that camera's pictures go to its own
    view (show_camera/wants_camera, when the output has them)."""

    def __init__(self, out: Output, camera: str) -> None:
        self.out, self.camera = out, camera

    def publish(self, emitted: Emitted, snapshot_jpeg: bytes | None, model: object) -> None:
        self.out.publish(emitted, snapshot_jpeg, model)

    def tick(self, status: Callable[[], dict]) -> None:
        self.out.tick(status)

    def wants_image(self) -> bool:
        wants = getattr(self.out, "wants_camera", None)
        return wants(self.camera) if wants is not None else self.out.wants_image()

    def show(self, image_bgr: object) -> bool:
        show = getattr(self.out, "show_camera", None)
        return show(self.camera, image_bgr) if show is not None else self.out.show(image_bgr)
