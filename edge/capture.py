"""Frame sources: picamera2, OpenCV devices/URLs/files; live sources keep only the newest frame."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.errors import UserError

log = logging.getLogger(__name__)

PICAMERA2_MISSING = (
    "picamera2 not available: on Raspberry Pi OS run sudo apt install python3-picamera2 "
    "and create the venv with --system-site-packages (setup.sh does this)"
)
FIRST_BACKOFF_S = 0.5  # first wait before reopening a lost camera; doubles up to the max
MAX_BAD_FRAMES = 250  # file: this many failed reads in a row mean the end, not corruption


@dataclass
class Frame:
    """One captured frame."""

    image: np.ndarray  # full-resolution BGR uint8
    index: int  # frame number counted from the start of the source
    source_time: float  # seconds from the start of the source (index / fps for files)
    wall_time: float  # time.time() when the frame was captured
    lores: np.ndarray | Callable[[], np.ndarray] | None = None  # `small`, or what makes it

    @property
    def small(self) -> np.ndarray | None:
        """The low-res BGR copy (lores_width wide) when one was asked for, made on first use:
        the frames detection skips never pay for it."""
        if callable(self.lores):
            self.lores = self.lores()
        return self.lores

    @property
    def view(self) -> np.ndarray:
        """What detection looks at: `small` when there is one, else `image`."""
        small = self.small
        return self.image if small is None else small


class Source:
    """A stream of frames. `read()` blocks for the next one; None means the source has ended."""

    name: str = ""
    fps: float = 0.0
    live: bool = False  # a camera or stream: frames come in real time and cannot be replayed
    frames_read: int = 0  # frames taken from the camera/file, including dropped ones
    frames_dropped: int = 0  # frames taken but never returned by read() (consumer too slow)

    def read(self) -> Frame | None:
        """Block until the next frame; None once the source ended (file end, or close())."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop capturing and release the device; a blocked read() returns None."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def source_kind(spec: str) -> str:
    """'picamera2', 'device', 'url' or 'file' for a camera.source value."""
    spec = spec.strip()
    if spec == "picamera2":
        return "picamera2"
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "device"
    if "://" in spec:
        return "url"
    return "file"


def open_source(
    cam: CameraConfig, realtime: bool | None = None, lores_width: int | None = None
) -> Source:
    """Open camera.source. realtime paces a file at its fps (None: files every frame).

    lores_width: also give each frame a `small` BGR copy this wide (for detection).
    Raises UserError (one line naming the source) when it cannot be opened.
    """
    kind = source_kind(cam.source)
    if kind == "picamera2":
        return Picamera2Source(cam, lores_width=lores_width)
    return OpenCVSource(cam, realtime=bool(realtime), lores_width=lores_width)


def orient(image: np.ndarray, rotation: int, hflip: bool, vflip: bool) -> np.ndarray:
    """Apply the configured flips, then rotate clockwise by `rotation` degrees."""
    if hflip and vflip:
        image = cv2.flip(image, -1)
    elif hflip:
        image = cv2.flip(image, 1)
    elif vflip:
        image = cv2.flip(image, 0)
    if rotation == 90:
        image = cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    elif rotation == 180:
        image = cv2.rotate(image, cv2.ROTATE_180)
    elif rotation == 270:
        image = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


def downscale(image: np.ndarray, width: int) -> np.ndarray:
    """Resize to `width` keeping the aspect ratio (INTER_AREA); unchanged if not wider."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    height = max(1, round(h * width / w))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class OpenCVSource(Source):
    """A video file, a V4L2 device or an RTSP/HTTP stream read with OpenCV."""

    def __init__(
        self, cam: CameraConfig, realtime: bool = False, lores_width: int | None = None
    ) -> None:
        self.cam = cam
        self.name = cam.source.strip()
        self.kind = source_kind(self.name)
        self.live = self.kind in ("device", "url")
        self.realtime = realtime or self.live  # frames are dropped rather than delayed
        self.lores_width = lores_width
        self.frames_read = 0
        self.frames_dropped = 0
        self.frames_corrupt = 0  # file: undecodable frames skipped
        self._closed = threading.Event()
        self._next_index = 0  # file: index of the next frame in the file
        self._t0: float | None = None  # file, realtime: monotonic time of frame 0
        if self.kind == "file" and not Path(self.name).is_file():
            raise UserError(f"cannot open video file {self.name}: no such file")
        cap = self._open()
        if cap is None:
            what = "video file" if self.kind == "file" else "camera"
            raise UserError(f"cannot open {what} {self.name}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else cam.fps
        if self.live:
            self._cap = None
            self._cond = threading.Condition()
            self._latest: Frame | None = None
            self._taken = True  # the latest frame was already returned by read()
            self._last_frame_mono = time.monotonic()
            self._gen = 0  # reader generation; a stalled reader is abandoned by bumping it
            self._readers: list[threading.Thread] = []
            self._lost = False
            self._t_start = time.monotonic()
            self._thread = threading.Thread(
                target=self._supervise, args=(cap,), name="capture", daemon=True
            )
            self._thread.start()
        else:
            self._cap = cap
            self._lock = threading.Lock()
        log.info(
            "source %s: %s, %.3g fps%s",
            self.name,
            self.kind,
            self.fps,
            ", paced in real time" if self.realtime and not self.live else "",
        )

    # --- opening -------------------------------------------------------------------------

    def _open(self) -> cv2.VideoCapture | None:
        """One attempt to open the source; None when it is not there."""
        timeout_ms = int(self.cam.stall_timeout_s * 1000)
        if self.kind == "device":
            target: int | str = int(self.name) if self.name.isdigit() else self.name
            cap = cv2.VideoCapture(target)
        elif self.kind == "url":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                timeout_ms,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                timeout_ms,
            ]
            cap = cv2.VideoCapture(self.name, cv2.CAP_FFMPEG, params)
        else:
            cap = cv2.VideoCapture(self.name)
        if not cap.isOpened():
            cap.release()
            return None
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cam.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cam.height)
            cap.set(cv2.CAP_PROP_FPS, self.cam.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _make_frame(self, image: np.ndarray, index: int, source_time: float) -> Frame:
        cam = self.cam
        image = orient(image, cam.rotation, cam.hflip, cam.vflip)
        small = partial(downscale, image, self.lores_width) if self.lores_width else None
        return Frame(image, index, source_time, time.time(), small)

    # --- files ---------------------------------------------------------------------------

    def _read_file(self) -> Frame | None:
        with self._lock:
            cap = self._cap
            if cap is None or self._closed.is_set():
                return None
            if self.realtime:
                now = time.monotonic()
                if self._t0 is None:
                    self._t0 = now
                due = int((now - self._t0) * self.fps)
                while self._next_index < due:  # their time has passed: skip without decoding
                    if self._next_file_frame(cap, decode=False) is None:
                        return self._end()
                    self._next_index += 1
                    self.frames_read += 1
                    self.frames_dropped += 1
                wait = self._t0 + self._next_index / self.fps - time.monotonic()
                if wait > 0 and self._closed.wait(wait):
                    return None
            image = self._next_file_frame(cap, decode=True)
            if image is None:
                return self._end()
            index = self._next_index
            self._next_index += 1
            self.frames_read += 1
        return self._make_frame(image, index, index / self.fps)

    def _next_file_frame(self, cap: cv2.VideoCapture, decode: bool) -> np.ndarray | bool | None:
        """The next frame of a file (True when not decoded), past undecodable ones; None at
        the end. OpenCV reports a corrupt frame like the end of the file, then reads on."""
        for failed in range(MAX_BAD_FRAMES + 1):
            if decode:
                ok, image = cap.read()
            else:
                ok, image = cap.grab(), True
            if ok:
                if failed:
                    self._skip_bad(failed)
                return image
        return None

    def _skip_bad(self, count: int) -> None:
        """`count` undecodable frames were passed over (lock held): keep time, say so once."""
        if not self.frames_corrupt:
            log.warning(
                "source %s: skipping undecodable frames (the first at frame %d); "
                "the count is given at the end",
                self.name,
                self._next_index,
            )
        self.frames_corrupt += count
        self._next_index += count
        self.frames_read += count
        self.frames_dropped += count

    def _end(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        bad = f" ({self.frames_corrupt} undecodable skipped)" if self.frames_corrupt else ""
        log.info("source %s: end after %d frames%s", self.name, self._next_index, bad)
        return None

    # --- live sources --------------------------------------------------------------------

    def _supervise(self, cap: cv2.VideoCapture | None) -> None:
        """Keep a reader running; reopen with exponential backoff when it dies or stalls."""
        first = min(FIRST_BACKOFF_S, self.cam.reopen_backoff_max_s)
        backoff = first
        while not self._closed.is_set():
            if cap is None:
                cap = self._open()
            if cap is not None:
                with self._cond:
                    self._gen += 1
                    gen = self._gen
                    self._last_frame_mono = time.monotonic()
                reader = threading.Thread(
                    target=self._read_live, args=(cap, gen), name="capture-reader", daemon=True
                )
                frames_before = self.frames_read
                self._readers = [r for r in self._readers if r.is_alive()] + [reader]
                reader.start()
                cap = None  # the reader owns and releases it
                reason = self._watch(reader)
                if reason is None:
                    break
                with self._cond:
                    self._gen += 1  # a stalled reader drops its frames and exits when it wakes
                self._set_lost(True, reason)
                if self.frames_read > frames_before:  # it worked for a while: retry at once
                    backoff = first
                    continue
            log.debug("source %s: reopen failed, next try in %.1f s", self.name, backoff)
            if self._closed.wait(backoff):
                break
            backoff = min(backoff * 2, self.cam.reopen_backoff_max_s)
        with self._cond:
            self._cond.notify_all()

    def _watch(self, reader: threading.Thread) -> str | None:
        """Wait while the reader delivers; the reason it stopped, or None on close()."""
        stall = self.cam.stall_timeout_s
        while not self._closed.wait(min(0.1, stall / 4)):
            if not reader.is_alive():
                return "stream ended or read failed"
            if time.monotonic() - self._last_frame_mono > stall:
                return f"no frame for {stall:g} s"
        return None

    def _read_live(self, cap: cv2.VideoCapture, gen: int) -> None:
        try:
            while not self._closed.is_set():
                ok, image = cap.read()
                if not ok or gen != self._gen:
                    return
                now = time.monotonic()
                self._set_lost(False)
                index = self.frames_read
                frame = self._make_frame(image, index, now - self._t_start)
                with self._cond:
                    if gen != self._gen:
                        return
                    self.frames_read += 1
                    if not self._taken:
                        self.frames_dropped += 1
                    self._latest, self._taken = frame, False
                    self._last_frame_mono = now
                    self._cond.notify_all()
        finally:
            cap.release()

    def _set_lost(self, lost: bool, reason: str = "") -> None:
        if lost == self._lost:
            return
        self._lost = lost
        if lost:
            log.warning(
                "camera lost: %s (%s); reopening with backoff up to %g s",
                self.name,
                reason,
                self.cam.reopen_backoff_max_s,
            )
        else:
            log.warning("camera back: %s", self.name)

    def _read_latest(self) -> Frame | None:
        with self._cond:
            while self._taken and not self._closed.is_set():
                self._cond.wait(0.5)
            if self._closed.is_set():
                return None
            self._taken = True
            return self._latest

    # --- Source --------------------------------------------------------------------------

    @property
    def lost(self) -> bool:
        """True while a live camera is gone and being reopened."""
        return self.live and self._lost

    def read(self) -> Frame | None:
        """Block until the next frame; None once the source ended (file end, or close())."""
        return self._read_latest() if self.live else self._read_file()

    def close(self) -> None:
        """Stop capturing and release the device; a blocked read() returns None."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.live:
            with self._cond:
                self._cond.notify_all()
            self._thread.join(timeout=2)
            # A reader blocked in cap.read() wakes within the read timeout and releases its
            # capture; letting it die at interpreter exit inside FFmpeg aborts the process.
            for reader in self._readers:
                reader.join(timeout=self.cam.stall_timeout_s + 1)
        else:
            with self._lock:
                if self._cap is not None:
                    self._cap.release()
                    self._cap = None


class Picamera2Source(Source):
    """The Raspberry Pi camera through picamera2: a main stream for crops, lores for detection."""

    def __init__(self, cam: CameraConfig, lores_width: int | None = None) -> None:
        try:
            from libcamera import Transform
            from picamera2 import Picamera2
        except ImportError:
            raise UserError(PICAMERA2_MISSING) from None
        self.cam = cam
        self.name = f"picamera2 camera {cam.camera_num}" if cam.camera_num else "picamera2"
        self.live = True
        self.fps = float(cam.fps)
        self.frames_read = 0
        self.frames_dropped = 0
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._t0_ns: int | None = None
        self._last_ns: int | None = None
        self._t0_mono = time.monotonic()
        # 180 degrees is both flips, done by the ISP; 90/270 are done here after the flips.
        half_turn = cam.rotation == 180
        self._soft_rotation = cam.rotation if cam.rotation in (90, 270) else 0
        transform = Transform(hflip=int(cam.hflip ^ half_turn), vflip=int(cam.vflip ^ half_turn))
        frame_us = int(round(1_000_000 / cam.fps))
        main = {"size": (cam.width, cam.height), "format": "RGB888"}  # BGR bytes in numpy
        self.lores_size: tuple[int, int] | None = None
        self._small_is_main = bool(lores_width) and lores_width >= cam.width
        lores = None
        if lores_width and lores_width < cam.width:
            lw = max(2, lores_width // 2 * 2)
            lh = max(2, round(cam.height * lw / cam.width) // 2 * 2)
            self.lores_size = (lw, lh)
            lores = {"size": self.lores_size, "format": "YUV420"}
        try:
            self._cam = Picamera2(cam.camera_num)
        except Exception as exc:  # noqa: BLE001 - libcamera raises plain errors
            raise UserError(f"cannot open camera {self.name}: {exc}") from None
        try:
            config = self._cam.create_video_configuration(
                main=main,
                lores=lores,
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                transform=transform,
            )
            self._cam.configure(config)
            if lores is not None:
                self._lores_stride = int(self._cam.stream_configuration("lores")["stride"])
            self._cam.start()
        except Exception as exc:  # noqa: BLE001
            self._cam.close()
            raise UserError(
                f"cannot start camera picamera2 at {cam.width}x{cam.height} {cam.fps:g} fps: {exc}"
            ) from None
        log.info(
            "source picamera2: %dx%d at %g fps, lores %s",
            cam.width,
            cam.height,
            cam.fps,
            "x".join(map(str, self.lores_size)) if self.lores_size else "off",
        )

    def _lores_bgr(self, buf: np.ndarray) -> np.ndarray:
        """A strided I420 (YUV420) lores buffer -> packed BGR."""
        w, h = self.lores_size  # type: ignore[misc]
        s = self._lores_stride
        flat = np.asarray(buf, dtype=np.uint8).reshape(-1)
        y = flat[: s * h].reshape(h, s)[:, :w]
        half = (s // 2) * (h // 2)
        u = flat[s * h : s * h + half].reshape(h // 2, s // 2)[:, : w // 2]
        v = flat[s * h + half : s * h + 2 * half].reshape(h // 2, s // 2)[:, : w // 2]
        i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)

    def _small(self, lores: np.ndarray) -> np.ndarray:
        """The lores buffer as the frame's BGR `small`, turned like the main image."""
        return orient(self._lores_bgr(lores), self._soft_rotation, False, False)

    def read(self) -> Frame | None:
        """The next frame from the camera (picamera2 hands over the newest completed one)."""
        with self._lock:
            if self._closed.is_set():
                return None
            try:
                request = self._cam.capture_request()
            except Exception as exc:  # noqa: BLE001 - libcamera raises plain errors
                # One line and exit 2; under systemd the service restarts and reopens it.
                raise UserError(f"camera picamera2 failed: {exc}") from None
            try:
                image = request.make_array("main")
                lores = request.make_buffer("lores") if self.lores_size else None  # a copy
                ts = request.get_metadata().get("SensorTimestamp")
            finally:
                request.release()
        wall = time.time()
        if ts is None:
            source_time = time.monotonic() - self._t0_mono
        else:
            if self._t0_ns is None:
                self._t0_ns = self._last_ns = ts
            # Frames the sensor delivered while we were busy, judged from the timestamps.
            gap = (ts - self._last_ns) * self.fps / 1e9
            skipped = max(0, round(gap) - 1)
            self.frames_dropped += skipped
            self.frames_read += skipped
            self._last_ns = ts
            source_time = (ts - self._t0_ns) / 1e9
        index = self.frames_read
        self.frames_read += 1
        image = orient(image, self._soft_rotation, False, False)
        small = None if lores is None else partial(self._small, lores)  # made when used
        return Frame(image, index, source_time, wall, image if self._small_is_main else small)

    def close(self) -> None:
        """Stop the camera and release it."""
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
