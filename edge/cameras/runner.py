"""Several cameras in one process: a thread per camera (OpenCV and the TFLite runtime work
outside the GIL), one face model and aligner shared behind a lock each (a TFLite interpreter
is not thread-safe; recognition runs only until a face is decided), one detector behind a
lock per set of detect settings, one set of outputs fed one camera's frame at a time, one
visit per person (visits.py).

SIGINT/SIGTERM stop every camera ('left' for whoever is present, outputs closed, exit 0);
SIGHUP and a changed model file reload the model for every camera at once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Any

from edge.cameras.loop import CameraLoop
from edge.cameras.visits import Visits
from edge.capture import Frame, open_source, source_kind
from edge.config import Config, ConfigError, camera_configs, load_config
from edge.decide import Emitted
from edge.errors import UserError
from edge.notify import Notifier
from edge.pipeline import (
    Stages,
    _realtime,
    build_stages,
    close_outputs,
    install_signals,
    shut_down,
)
from edge.publish import Output, Sink
from edge.recognize import labels_path
from edge.slugs import read_slugs, slug_book_path
from edge.stats import Stats, cpu_temperature
from edge.unknowns import UnknownOutput
from edge.visitor_actions import VisitorActions
from edge.watch import FileWatch

log = logging.getLogger(__name__)

TICK_S = 0.2  # how often the main thread looks at signals, the model file and the stats


class Locked:
    """`obj` with each method call made one caller at a time."""

    def __init__(self, obj: Any) -> None:
        self._obj, self._lock = obj, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


def shared_stages(
    cfg: Config, cameras: list[Config], share_model: bool = True, share_detector: bool = True
) -> list[Stages]:
    """Each camera's stages: the face model and aligner loaded once and shared behind a lock
    (share_model False: loaded per camera); one detector behind a lock for the cameras with
    the same detect settings (detectors keep no state between calls; share_detector False:
    one per camera). docs/cameras.md has the measured choice: 14-16.5 MB per added camera
    against 50-51 MB, CPU and fps the same."""
    from edge.detect import create_live_detector

    if not share_model:
        return [build_stages(c) for c in cameras]
    base = build_stages(cfg)
    aligner = Locked(base.aligner) if base.aligner is not None else None
    model = Locked(base.model) if base.model is not None else None
    detectors: list[tuple[Any, Any]] = [(cfg.detect, base.detector)]  # (settings, detector)
    out = []
    for c in cameras:
        found = next((d for s, d in detectors if s == c.detect), None)
        if found is None or (not share_detector and any(st.detector is found for st in out)):
            found = create_live_detector(c.detect)
            detectors.append((c.detect, found))
        out.append(Stages(c, found, aligner, model))
    if share_detector:
        locked = {id(d): Locked(d) for d in {id(st.detector): st.detector for st in out}.values()}
        out = [Stages(st.cfg, locked[id(st.detector)], aligner, model) for st in out]
    return out


class Cameras:
    """One run of several camera loops sharing the model, the library owner and the outputs."""

    def __init__(
        self,
        cfg: Config,
        args: argparse.Namespace,
        outputs: list[Output],
        share_model: bool = True,
        share_detector: bool = True,
    ) -> None:
        self.cfg, self.args = cfg, args
        self.notifier = Notifier()
        self.outputs = list(outputs)
        self.sink: Sink = next(o for o in self.outputs if isinstance(o, Sink))
        self._switched_off = self.sink.switched_off
        self._lock = threading.Lock()  # the outputs take one camera's frame at a time
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.failure: str | None = None
        self.loops: list[CameraLoop] = []
        try:
            configs = camera_configs(cfg)
            stages = shared_stages(cfg, configs, share_model, share_detector)
            for c, st in zip(configs, stages, strict=True):
                self.loops.append(
                    CameraLoop(c, self._open(c), st, self.sink, self._deliver, self.outputs,
                               self._status, _realtime(args))
                )  # fmt: skip
        except BaseException:
            self._close_sources()
            close_outputs(self.sink, self.outputs)
            raise
        self.stages = stages[0]
        self._handed = self._people()
        for out in self.outputs:
            out.start(*self._handed)
        unknowns = next((o for o in self.outputs if isinstance(o, UnknownOutput)), None)
        store = unknowns.store if unknowns is not None else None
        self.visits = Visits(store.next_visit() if store is not None else 1)
        self.visitors = (
            VisitorActions(cfg, lambda *done: self.sink.visitor_done(*done))
            if store is not None
            else None
        )
        self.sink.visitor_handler = self.visitors.request if self.visitors else None
        path = cfg.recognize.model
        self.model_watch = FileWatch(labels_path(path) if path else None, cfg.recognize.watch_s)
        self.slug_watch = FileWatch(slug_book_path(path) if path else None, cfg.recognize.watch_s)

    def _open(self, c: Config) -> Any:
        """The camera's source; None for a live camera absent now (its thread retries)."""
        try:
            return open_source(c.camera, _realtime(self.args), lores_width=c.detect.downscale_width)
        except UserError as exc:
            if source_kind(c.camera.source) == "file":
                raise
            log.warning("camera %s: %s; retrying while the others run", c.camera_name(), exc)
            return None

    def _people(self) -> tuple[list[str], dict[str, str]]:
        return self.stages.labels, read_slugs(self.cfg.recognize.model, self.stages.labels)

    # --- the cameras' threads ------------------------------------------------------------

    def _camera(self, loop: CameraLoop) -> None:
        try:
            loop.run(self._stop, getattr(self.args, "max_frames", None))
        except Exception as exc:  # noqa: BLE001 - one camera's bug stops the run with its reason
            log.exception("camera %s failed", loop.name)
            self.failure = f"camera {loop.name}: {exc}"
        finally:
            if loop.last is not None:
                self._deliver(loop, loop.leave_all(), loop.last, show=False)

    def _deliver(
        self, loop: CameraLoop, events: list[Emitted], frame: Frame, show: bool = True
    ) -> bool:
        """One camera's frame: its events folded across cameras and published, its picture
        shown; False when the preview window was closed."""
        with self._lock:
            if self.sink.switched_off != self._switched_off:  # the cameras forget everyone too
                self._switched_off = self.sink.switched_off
                self.visits.clear()
            loop._publish_now([e for e in events if self.visits.fold(loop.name, e)])
            return loop._show(frame) if show else True

    # --- signals, reload -----------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self._stop.set()

    def _on_hup(self, signum: int, _frame: Any) -> None:
        self._reload.set()

    def reload(self) -> bool:
        """Re-read the config and the model; every camera gets the new model at once. The
        cameras themselves and their detect settings change on a restart."""
        self.notifier.reloading()
        try:
            cfg = load_config(self.args.config, getattr(self.args, "overrides", {}))
            stages = shared_stages(cfg, camera_configs(cfg)[:1])[0]
        except (ConfigError, UserError, ValueError, OSError) as exc:
            log.error("reload failed, keeping the running config and model: %s", exc)
            self.notifier.ready()
            return False
        if [c.camera for c in camera_configs(cfg)] != [lp.cfg.camera for lp in self.loops]:
            log.warning("reload: the cameras changed: restart to use the new ones")
        with self._lock:
            for loop, c in zip(self.loops, camera_configs(cfg), strict=False):
                loop.judge.model, loop.judge.aligner = stages.model, stages.aligner
                loop.judge.cfg, loop.tracker.cfg, loop.presence.cfg = c.recognize, c.track, c.decide
                loop.stages = Stages(c, loop.stages.detector, stages.aligner, stages.model)
            self.cfg, self.stages = cfg, stages
            logging.getLogger().setLevel(cfg.log_level)
            if self.visitors is not None:
                self.visitors.cfg = cfg
            for out in self.outputs:
                out.reload(cfg)
            self._hand_people()
        log.info("reloaded %s (%d people in the model)", cfg.source_file, len(stages.labels))
        self.notifier.ready()
        return True

    def _hand_people(self) -> None:
        people = self._people()
        if people != self._handed:
            self._handed = people
            for out in self.outputs:
                out.start(*people)

    # --- the run -------------------------------------------------------------------------

    def run(self) -> int:
        """Run every camera until all sources end or a stop signal; the exit status."""
        old = install_signals(self._on_stop, self._on_hup)
        threads = [
            threading.Thread(target=self._camera, args=(lp,), name=f"camera-{lp.name}", daemon=True)
            for lp in self.loops
        ]
        try:
            for t in threads:
                t.start()
            names = ", ".join(f"{lp.name} ({lp.cfg.camera.source})" for lp in self.loops)
            log.info("reading %d cameras: %s", len(self.loops), names)
            self.notifier.ready(f"reading {len(self.loops)} cameras")
            next_stats = time.monotonic() + self.cfg.stats_interval_s
            while any(t.is_alive() for t in threads) and not self._stop.wait(TICK_S):
                failed = self.failure or next((o.failure for o in self.outputs if o.failure), None)
                if failed:
                    raise UserError(failed)
                self.notifier.watchdog()
                if self.model_watch.changed():
                    log.info("the face model changed: reloading")
                    self._reload.set()
                if self.slug_watch.changed():
                    with self._lock:
                        self._hand_people()
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.cfg.stats_interval_s
                    self._periodic()
            if self.failure:
                raise UserError(self.failure)
            return 0
        finally:
            self.notifier.stopping()
            self._stop.set()
            self._close_sources()  # wakes a read() blocked on a lost camera
            for t in threads:
                t.join(timeout=30)
            self._shutdown()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    # --- stats ---------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The --stats-json object: every camera's own, and their sums."""
        snaps = [lp.snapshot() for lp in self.loops]
        per = {lp.name: lp.summary(snap) for lp, snap in zip(self.loops, snaps, strict=True)}
        merged = Stats()
        for snap in snaps:
            for name, samples in snap.stages.items():
                merged.stages[name].extend(samples)
            for name, samples in snap.stages_cpu.items():
                merged.stages_cpu[name].extend(samples)
            merged.latency.extend(snap.latency)
            merged.frames_processed += snap.frames_processed
            merged.events += snap.events
        merged._start = min(snap._start for snap in snaps)
        crops = [s for lp in self.loops for s in lp.judge.crop_seconds.copy()]
        total = merged.summary(
            sum(lp.frames_read for lp in self.loops),
            sum(lp.frames_dropped for lp in self.loops),
            crops,
        )
        return total | {"cameras": per}

    def _status(self) -> dict[str, Any]:
        """What the web app's Status page shows: the sums, and each camera's own figures."""
        s = self.summary()
        connected = getattr(self.sink, "connected", None)  # MqttSink only
        mqtt = "off (stdout)" if connected is None else ("connected" if connected else "not connected")  # fmt: skip
        return s | {
            "cpu_temp_c": cpu_temperature(), "mqtt": mqtt,
            "present": len(self.visits.present),
            "source": ", ".join(lp.name for lp in self.loops),
            "model": self.cfg.recognize.model if self.stages.model else "",
            "people": len(self.stages.labels),
        }  # fmt: skip

    def _periodic(self) -> None:
        """Stats to the log and the outputs: the sums, and per camera fps, drops and lost."""
        s = self.summary()
        fps = {lp.name: round(lp.stats.period(), 2) for lp in self.loops}
        s["fps"] = round(sum(fps.values()), 2)
        for name, f in fps.items():
            s["cameras"][name]["fps"] = f
        s["cpu_temp_c"] = cpu_temperature()
        s["present"] = len(self.visits.present)
        log.info(
            "stats: %s",
            ", ".join(
                f"{lp.name} {fps[lp.name]:.1f} fps{' (lost)' if lp.lost else ''}"
                for lp in self.loops
            ),
        )
        with self._lock:
            for out in self.outputs:
                out.stats(s)
        self.notifier.status(f"{s['fps']:.1f} fps, {s['present']} present, {s['events']} events")

    # --- shutdown ------------------------------------------------------------------------

    def _close_sources(self) -> None:
        for lp in self.loops:
            if lp.source is not None:
                lp.source.close()

    def _shutdown(self) -> None:
        shut_down(
            self.visitors,
            self.sink,
            self.outputs,
            getattr(self.args, "stats_json", None),
            self.summary,
        )


def run_cameras(cfg: Config, args: argparse.Namespace, outputs: list[Output]) -> int:
    """Run every camera of cfg's `cameras:` list until they end or SIGINT/SIGTERM."""
    return Cameras(cfg, args, outputs).run()
