"""The capture loop: source -> detect -> track -> recognize/decide -> publish, with stats.

SIGINT/SIGTERM stop gracefully (pending `left` events, sink closed, exit 0); SIGHUP reloads
the config file, detector and model, keeping the running ones when the new ones fail.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from edge.capture import Frame, Source, open_source
from edge.config import Config, ConfigError, load_config
from edge.decide import UNKNOWN, Emitted, Judge, Presence
from edge.detectors.twostage import NEAR_MARGIN
from edge.errors import UserError
from edge.motion import SceneWatch
from edge.notify import Notifier
from edge.publish import Output, Sink, create_sink
from edge.recognize import labels_path
from edge.slugs import read_slugs, slug_book_path
from edge.stats import Rate, Stats, cpu_temperature
from edge.track import Tracker
from edge.unknowns import UnknownOutput
from edge.visitor_actions import VisitorActions
from edge.watch import FileWatch

log = logging.getLogger(__name__)

GREEN, RED, YELLOW = (0, 200, 0), (0, 0, 230), (0, 220, 255)


@dataclass
class Stages:
    """The replaceable parts built from a config: detector, aligner and face model."""

    cfg: Config
    detector: Any
    aligner: Any | None
    model: Any | None

    @property
    def labels(self) -> list[str]:
        """The model's people (empty in detect-only mode)."""
        return list(self.model.labels) if self.model is not None else []


def build_stages(cfg: Config) -> Stages:
    """Detector, aligner and model for `cfg`; detect-only when the default model is absent.

    Raises UserError/ModelError (one line) when a model file is bad or explicitly missing.
    """
    from edge.detect import create_live_detector

    detector = create_live_detector(cfg.detect)
    path = cfg.recognize.model
    if not path:
        log.info("recognize.model is empty: detect only, every face is unknown")
        return Stages(cfg, detector, None, None)
    first = Path(path).with_name("backbone.tflite").is_file()  # the first enrolment makes it
    from edge.align import Aligner

    if not Path(path).exists() and ("recognize.model" not in cfg.explicit or first):
        log.warning(
            "no face model at %s (the first person enrolled makes it, with backbone.tflite "
            "beside it; or train one with `python -m convert train DATASET`): detect only, "
            "every face is unknown",
            path,
        )
        if first:  # visitors told apart by the backbone's embeddings, their crops nameable
            from edge.library.first_model import bare_model

            backbone = Path(path).with_name("backbone.tflite")
            return Stages(cfg, detector, Aligner(cfg.detect), bare_model(cfg.recognize, backbone))
        return Stages(cfg, detector, None, None)
    from edge.recognize import FaceModel

    model = FaceModel.load(path, cfg.recognize)
    log.info("face model %s: %d people", path, len(model.labels))
    return Stages(cfg, detector, Aligner(cfg.detect), model)


def _realtime(args: argparse.Namespace) -> bool | None:
    if getattr(args, "realtime", False):
        return True
    if getattr(args, "every_frame", False):
        return False
    return None


def _jpeg(image: Any) -> bytes | None:
    if image is None or getattr(image, "size", 0) == 0:
        return None
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else None


def _unknown_label(model: Any, embedding: Any) -> str:
    """'unknown (closest Bob, d 0.52)': the nearest person and the cosine distance to them."""
    closest = model.closest(embedding) if model is not None else None
    return f"unknown (closest {closest[0]}, d {closest[1]:.2f})" if closest else "unknown"


class Loop:
    """One run of the capture loop; state survives a SIGHUP reload."""

    def __init__(self, cfg: Config, args: argparse.Namespace, outputs: list[Output]) -> None:
        """`outputs` (edge.outputs.build_outputs) get every result; the first Sink among
        them also carries the on/off switch and the visitor commands."""
        self.cfg, self.args = cfg, args
        self.notifier = Notifier()
        self.outputs = list(outputs)
        self.sink: Sink = next(o for o in self.outputs if isinstance(o, Sink))
        try:
            self.stages = build_stages(cfg)
            self.source: Source = open_source(
                cfg.camera, _realtime(args), lores_width=cfg.detect.downscale_width
            )
        except BaseException:
            # MQTT says offline and stops its thread before exit 2
            close_outputs(self.sink, self.outputs)
            raise
        self._handed = self._people(cfg, self.stages)
        for out in self.outputs:
            out.start(*self._handed)
        self.tracker = Tracker(cfg.track)
        self.scene = SceneWatch()
        self.judge = Judge(cfg.recognize, self.stages.model, self.stages.aligner)
        self.stats = Stats()
        self.unknowns = next((o for o in self.outputs if isinstance(o, UnknownOutput)), None)
        store = self.unknowns.store if self.unknowns is not None else None
        self.presence = Presence(cfg.decide, store.next_visit() if store is not None else 1)
        self.visitors = (
            VisitorActions(cfg, lambda *done: self.sink.visitor_done(*done))
            if store is not None
            else None
        )
        self.sink.visitor_handler = self.visitors.request if self.visitors else None
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._closer: threading.Thread | None = None
        self._fps = Rate()  # for the preview
        self._detect_count = 0
        self._switched_off = self.sink.switched_off
        self.model_watch, self.slug_watch = self._model_watch(cfg)

    @staticmethod
    def _model_watch(cfg: Config) -> tuple[FileWatch, FileWatch]:
        """Watches faces.json, which every model update replaces last, and the slug map
        beside it (nothing when detect-only)."""
        path = cfg.recognize.model
        return (
            FileWatch(labels_path(path) if path else None, cfg.recognize.watch_s),
            FileWatch(slug_book_path(path) if path else None, cfg.recognize.watch_s),
        )

    @staticmethod
    def _people(cfg: Config, stages: Stages) -> tuple[list[str], dict[str, str]]:
        """The model's labels and their entity slugs, read from disk (never written here)."""
        return stages.labels, read_slugs(cfg.recognize.model, stages.labels)

    def _hand_people(self) -> None:
        """Give the outputs the model's labels and slugs when they changed."""
        people = self._people(self.cfg, self.stages)
        if people != self._handed:
            self._handed = people
            for out in self.outputs:
                out.start(*people)

    # --- signals -------------------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: Any) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        # close() wakes a read() blocked on a lost camera; not from the handler (locks).
        self._closer = threading.Thread(target=self.source.close, name="close", daemon=True)
        self._closer.start()

    def _on_hup(self, signum: int, _frame: Any) -> None:
        self._reload.set()

    # --- reload --------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file and rebuild the stages; keep the old ones on any failure."""
        self.notifier.reloading()
        try:
            cfg = load_config(self.args.config, getattr(self.args, "overrides", {}))
            stages = build_stages(cfg)
        except (ConfigError, UserError, ValueError, OSError) as exc:
            log.error("reload failed, keeping the running config and model: %s", exc)
            self.notifier.ready()
            return False
        old = self.cfg
        if cfg.camera != old.camera or cfg.detect.downscale_width != old.detect.downscale_width:
            try:
                source = open_source(
                    cfg.camera, _realtime(self.args), lores_width=cfg.detect.downscale_width
                )
            except UserError as exc:
                log.error("reload failed, keeping the running camera: %s", exc)
                self.notifier.ready()
                return False
            self.source.close()
            self.source = source
        if cfg.mqtt != old.mqtt:
            try:
                sink = create_sink(cfg, getattr(self.args, "sink", None))
            except (ConfigError, UserError, OSError) as exc:
                log.error("reload: keeping the running sink: %s", exc)
            else:
                self.sink.close()
                sink.start(*self._handed)  # the reloaded model's people follow below
                self.outputs[self.outputs.index(self.sink)] = self.sink = sink
                self._switched_off = sink.switched_off
                self.sink.visitor_handler = self.visitors.request if self.visitors else None
        logging.getLogger().setLevel(cfg.log_level)
        if self.visitors is not None:
            self.visitors.cfg = cfg
        for out in self.outputs:
            out.reload(cfg)
        if cfg.recognize != old.recognize:
            self.model_watch, self.slug_watch = self._model_watch(cfg)
        self.cfg, self.stages = cfg, stages
        self._hand_people()
        self.tracker.cfg = cfg.track
        self.judge.cfg, self.judge.model, self.judge.aligner = (
            cfg.recognize,
            stages.model,
            stages.aligner,
        )
        self.presence.cfg = cfg.decide
        log.info("reloaded %s (%d people in the model)", cfg.source_file, len(stages.labels))
        self.notifier.ready()
        return True

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Read frames until the source ends or a stop signal; returns the exit status."""
        old = install_signals(self._on_stop, self._on_hup)
        try:
            self.notifier.ready(f"reading {self.source.name}")
            log.info("reading %s", self.source.name)
            last: Frame | None = None
            next_stats = time.monotonic() + self.cfg.stats_interval_s
            limit = getattr(self.args, "max_frames", None)
            while not self._stop.is_set():
                failed = next((o.failure for o in self.outputs if o.failure), None)
                if failed:
                    raise UserError(failed)
                if limit and self.source.frames_read >= limit:
                    break
                if self.model_watch.changed():
                    log.info("the face model changed: reloading")
                    self._reload.set()
                if self.slug_watch.changed():
                    self._hand_people()
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                t0, c0 = time.perf_counter(), time.process_time()
                frame = self.source.read()
                if frame is None:
                    break
                self.stats.add("capture", time.perf_counter() - t0, time.process_time() - c0)
                self.notifier.watchdog()
                if last is None:
                    self.stats.source_t0 = frame.wall_time - frame.source_time
                last = frame
                self._step(frame)
                if not self._show(frame):
                    break
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + self.cfg.stats_interval_s
                    self._periodic()
            if last is not None:
                self._publish(self.presence.leave_all(last))
            return 0
        finally:
            self.notifier.stopping()
            self._shutdown()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _step(self, frame: Frame) -> None:
        """One frame through detect, track, recognize/decide and publish."""
        st = self.stats
        if self.sink.switched_off != self._switched_off:  # even if on again since last frame
            self._switched_off = self.sink.switched_off
            log.debug("recognition switched off: everyone forgotten")
            self.tracker.clear()
            self.presence.people.clear()
            self.scene = SceneWatch()  # switched on again: the first frame is looked at
        if not self.sink.enabled:
            return
        st.frames_processed += 1
        faces = None
        due = self._detect_count % self.cfg.detect.every_n_frames == 0
        self._detect_count += 1
        if self.judge.needs_crops(self.tracker.tracks, frame.source_time) or (
            due and (self.tracker.tracks or self.scene.changed(frame.view))  # empty and still: skip
        ):
            with st.stage("detect"):
                faces = self._detect(frame)
        with st.stage("track"):
            if faces is not None:
                ended = self.tracker.update(faces, frame)
            else:
                ended = self.tracker.coast(frame)
        with st.stage("recognize"):
            self.judge.step(self.tracker.tracks, frame.source_time)
        with st.stage("publish"):
            self._publish(self.presence.update(frame, self.tracker.tracks, ended))

    def _detect(self, frame: Frame) -> list:
        """The detector on this frame; where it can (detect_in), only where faces can be: at
        the tracked faces and where the scene changed since it last looked there."""
        detector, view = self.stages.detector, frame.view
        if not hasattr(detector, "detect_in"):
            faces = detector.detect(frame.image, frame.small)
            self.scene.looked(view)
            return faces
        boxes = [t.box for t in self.tracker.tracks]
        sx = view.shape[1] / frame.image.shape[1]
        regions = self.scene.regions(view, [tuple(v * sx for v in b) for b in boxes], NEAR_MARGIN)
        faces = detector.detect_in(
            frame.image,
            frame.small,
            boxes,
            None if regions is None else [tuple(v / sx for v in r) for r in regions],
        )
        self.scene.looked(view, regions)
        return faces

    def _publish(self, emitted: list[Emitted]) -> None:
        for e in emitted:
            ev = e.event
            ev.setdefault("camera", self.cfg.camera_name())
            snapshot = _jpeg(e.crop) if ev["type"] != "left" else None
            for out in self.outputs:
                out.publish(e, snapshot, self.stages.model)
            self.stats.events += 1
            if e.track is not None:
                self.stats.event_latency(time.time() - e.track.first_wall_time)
            log.info(
                "%s %s (visit %s, track %s, confidence %.2f)",
                ev["type"],
                ev["name"] or "(unknown visitor)",
                ev["visit"],
                ev["track"],
                ev["confidence"],
            )

    def _periodic(self) -> None:
        """Stats to the log, the sink and systemd."""
        fps = self.stats.period()
        s = self.stats.summary(
            self.source.frames_read, self.source.frames_dropped, self.judge.crop_seconds
        )
        s["fps"] = round(fps, 2)
        s["cpu_temp_c"] = cpu_temperature()
        s["present"] = len(self.presence.people)
        s["tracks"] = len(self.tracker.tracks)
        stages = " ".join(f"{k}={v['median_ms']}" for k, v in s["stages"].items())
        log.info(
            "stats: %.1f fps, %d read, %d dropped, %d events, median ms %s",
            fps,
            s["frames_read"],
            s["frames_dropped"],
            s["events"],
            stages,
        )
        for out in self.outputs:
            out.stats(s)
        self.notifier.status(f"{fps:.1f} fps, {s['present']} present, {s['events']} events")

    # --- preview ---------------------------------------------------------------------------

    def _show(self, frame: Frame) -> bool:
        """Annotate the frame for the outputs that want it; False when the user closed the
        preview window."""
        for out in self.outputs:
            out.tick(self._status)
        wanting = [out for out in self.outputs if out.wants_image()]
        if not wanting:
            return True
        from edge.preview import annotate

        fps = self._fps.tick()
        items = []
        for t in self.tracker.confirmed(self.cfg.detect.every_n_frames):
            d = t.state.get("decision")
            if d is None:
                items.append((t.box, "?", YELLOW))
            elif d.name == UNKNOWN:
                items.append((t.box, _unknown_label(self.stages.model, d.embedding), RED))
            else:
                items.append((t.box, f"{d.name} {d.confidence:.2f}", GREEN))
        image = annotate(frame.image, items, fps)
        return all([out.show(image) for out in wanting])

    def _status(self) -> dict:
        """What the web app's Status page shows."""
        s = self.stats.summary(
            self.source.frames_read, self.source.frames_dropped, self.judge.crop_seconds
        )
        connected = getattr(self.sink, "connected", None)  # MqttSink only
        mqtt = "off (stdout)" if connected is None else ("connected" if connected else "not connected")  # fmt: skip
        return s | {
            "cpu_temp_c": cpu_temperature(), "mqtt": mqtt,
            "present": len(self.presence.people), "source": self.source.name,
            "model": self.cfg.recognize.model if self.stages.model else "",
            "people": len(self.stages.labels),
        }  # fmt: skip

    # --- shutdown ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        if self._closer is not None:
            self._closer.join(timeout=10)
        self.source.close()
        shut_down(
            self.visitors,
            self.sink,
            self.outputs,
            getattr(self.args, "stats_json", None),
            lambda: self.stats.summary(
                self.source.frames_read, self.source.frames_dropped, self.judge.crop_seconds
            ),
        )


def install_signals(on_stop: Callable, on_hup: Callable) -> dict[int, Any]:
    """SIGINT/SIGTERM -> on_stop, SIGHUP -> on_hup (from the main thread only); the old
    handlers, to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: on_hup}
    return {sig: signal.signal(sig, h) for sig, h in handlers.items()}


def shut_down(
    visitors: VisitorActions | None,
    sink: Sink,
    outputs: list[Output],
    stats_json: str | None,
    summary: Callable[[], dict],
) -> None:
    """At exit: the visitor actions, the outputs (close_outputs), then `summary()` written to
    the --stats-json file when one was asked for, whatever closing raised."""
    if visitors is not None:
        visitors.close()
    try:
        close_outputs(sink, outputs)
    finally:
        if stats_json:
            try:
                Path(stats_json).write_text(json.dumps(summary(), indent=1) + "\n")
            except OSError as exc:
                log.error("cannot write --stats-json %s: %s", stats_json, exc.strerror or exc)


def close_outputs(sink: Sink, outputs: list[Output]) -> None:
    """Close the sink first (MQTT's goodbye), then the others, whatever one raises."""
    try:
        sink.close()
    finally:
        for out in outputs:
            if out is not sink:
                try:
                    out.close()
                except Exception:
                    log.exception("closing %s", type(out).__name__)


def run_pipeline(cfg: Config, args: argparse.Namespace, outputs: list[Output]) -> int:
    """Run the capture loop until the source ends or SIGINT/SIGTERM; returns the exit status."""
    return Loop(cfg, args, outputs).run()
