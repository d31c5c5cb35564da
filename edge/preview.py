"""Show the annotated stream: a Tk window (--preview) or MJPEG over HTTP for a headless Pi."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edge.errors import UserError
from edge.publish import Output

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
NO_DISPLAY = "--preview needs a display; use preview.mjpeg_port for a headless Pi"
JPEG_QUALITY = 80
BOUNDARY = "edgeframe"
MAX_CLIENTS = 8  # open MJPEG connections; more are closed at once (each holds a thread and fd)
CLIENT_TIMEOUT_S = (
    10.0  # a client that sends no request, or reads nothing, for this long is dropped
)


class CappedServer(ThreadingHTTPServer):
    """A threading HTTP server that closes connections beyond `max_clients` at once."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type, max_clients: int, what: str = "MJPEG preview"
    ) -> None:
        self._slots = threading.BoundedSemaphore(max_clients)
        self._what = what
        self._max_clients = max_clients
        self._refusing = False
        super().__init__(address, handler)

    def process_request(self, request: object, client_address: object) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._refusing:  # once per episode, not per connection
                self._refusing = True
                log.warning(
                    "%s: %d connections open, closing new ones until one ends",
                    self._what,
                    self._max_clients,
                )
            self.shutdown_request(request)
            return
        self._refusing = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: object, client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def annotate(
    image_bgr: np.ndarray, items: list[tuple[Box, str, tuple[int, int, int]]], fps: float | None
) -> np.ndarray:
    """A copy of the image with each (box, label, colour) drawn, and the FPS in the corner."""
    out = image_bgr.copy()
    h, w = out.shape[:2]
    scale = max(0.4, w / 1280)
    thick = max(2, round(w / 320))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for (x, y, bw, bh), label, color in items:
        x, y, bw, bh = int(x), int(y), int(bw), int(bh)
        for i in range(thick):  # the outline stays inside the box's own pixels
            cv2.rectangle(out, (x + i, y + i), (x + bw - 1 - i, y + bh - 1 - i), color, 1)
        if not label:
            continue
        (tw, th), base = cv2.getTextSize(label, font, scale, 1)
        ty = y - 4 if y - th - base - 4 >= 0 else min(h - 1, y + bh + th + 4)
        cv2.rectangle(out, (x, ty - th - 3), (x + tw + 4, ty + base - 1), color, cv2.FILLED)
        b, g, r = color
        ink = (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 120 else (255, 255, 255)
        cv2.putText(out, label, (x + 2, ty - 2), font, scale, ink, 1, cv2.LINE_AA)
    if fps is not None:
        text = f"{fps:.1f} FPS"
        (tw, th), base = cv2.getTextSize(text, font, scale, 1)
        cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), cv2.FILLED)
        cv2.putText(out, text, (4, th + 4), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class PreviewWindow:
    """A Tk window showing frames; q, Esc or closing the window asks the loop to stop."""

    def __init__(self, title: str = "edge preview") -> None:
        if not os.environ.get("DISPLAY"):
            raise UserError(NO_DISPLAY)
        try:
            import tkinter
        except ImportError:
            raise UserError(
                "--preview needs Tk: sudo apt install python3-tk (or use preview.mjpeg_port)"
            ) from None
        self._tk = tkinter
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as exc:
            raise UserError(f"{NO_DISPLAY} (cannot open {os.environ['DISPLAY']}: {exc})") from None
        self._root.title(title)
        self._open = True
        self._photo: object | None = None
        self._label = tkinter.Label(self._root, borderwidth=0, highlightthickness=0)
        self._label.pack()
        for key in ("q", "Q", "<Escape>"):
            self._root.bind(key, self._quit)
        self._root.protocol("WM_DELETE_WINDOW", self._quit)
        self._root.focus_force()
        self._max_w = int(self._root.winfo_screenwidth() * 0.95)
        self._max_h = int(self._root.winfo_screenheight() * 0.9)

    def _quit(self, *_: object) -> None:
        self._open = False

    def show(self, image_bgr: np.ndarray) -> bool:
        """Display one frame and handle events; False once the user quit."""
        if not self._open:
            return False
        h, w = image_bgr.shape[:2]
        fit = min(1.0, self._max_w / w, self._max_h / h)
        if fit < 1.0:  # larger than the screen: shrink to fit
            size = (max(1, int(w * fit)), max(1, int(h * fit)))
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        ok, ppm = cv2.imencode(".ppm", image_bgr)  # Tk reads PPM natively, no Pillow needed
        if not ok:
            raise ValueError("cannot encode the preview frame")
        try:
            photo = self._tk.PhotoImage(data=ppm.tobytes(), format="PPM")
            self._label.configure(image=photo)
            self._photo = photo  # Tk keeps no reference of its own
            self._root.update()
        except self._tk.TclError:  # the window was destroyed under us
            self._open = False
        return self._open

    def close(self) -> None:
        """Destroy the window."""
        self._open = False
        with contextlib.suppress(self._tk.TclError):
            self._root.destroy()

    def __enter__(self) -> PreviewWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LatestFrame:
    """The newest annotated frame, JPEG-encoded once per frame and only when someone asks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: bytes = b""
        self._jpeg_seq = -1
        self._closed = False
        self._viewers = 0

    @property
    def wanted(self) -> bool:
        """Someone is waiting for frames (a producer may skip drawing them otherwise)."""
        return self._viewers > 0

    @contextlib.contextmanager
    def viewer(self):
        """Count the enclosed block as one viewer of the frames."""
        with self._cond:
            self._viewers += 1
        try:
            yield
        finally:
            with self._cond:
                self._viewers -= 1

    def update(self, image_bgr: np.ndarray) -> None:
        """Publish a new frame (kept by reference: do not modify it afterwards)."""
        with self._cond:
            self._image = image_bgr
            self._seq += 1
            self._cond.notify_all()

    def jpeg(self, after: int = -1, timeout: float = 1.0) -> tuple[int, bytes] | None:
        """(seq, JPEG) of the first frame newer than `after`; None on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._closed or (self._image is not None and self._seq > after), timeout
            ):
                return None
            if self._closed:
                return None
            if self._jpeg_seq == self._seq:
                return self._seq, self._jpeg
            image, seq = self._image, self._seq
        # Encoded outside the lock: the capture loop's update() never waits for an encoder.
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return None
        with self._cond:
            if seq > self._jpeg_seq:
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
        return seq, buf.tobytes()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def seq(self) -> int:
        """The number of the newest frame (0 before the first)."""
        return self._seq

    def close(self) -> None:
        """Wake and end every stream."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def send_snapshot(handler: BaseHTTPRequestHandler, frames: LatestFrame) -> None:
    """Answer with the newest frame as one JPEG (503 before the first frame)."""
    with frames.viewer():
        got = frames.jpeg(after=frames.seq, timeout=0.5) or frames.jpeg(timeout=0.1)
    if got is None:
        handler.send_error(503, "no frame yet")
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "image/jpeg")
    handler.send_header("Content-Length", str(len(got[1])))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.wfile.write(got[1])


def send_stream(handler: BaseHTTPRequestHandler, frames: LatestFrame, max_fps: float = 0.0) -> None:
    """Answer with the frames as MJPEG until the viewer goes away or the server closes;
    `max_fps` > 0 sends at most that many frames a second."""
    handler.send_response(200)
    handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    seq = -1
    with frames.viewer():
        try:
            while not frames.closed:
                got = frames.jpeg(after=seq)
                if got is None:
                    continue
                seq, data = got
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                    + b"\r\n"
                )
                handler.wfile.flush()
                if max_fps > 0:
                    time.sleep(1.0 / max_fps)
        except (ConnectionError, TimeoutError) as exc:  # gone, or not reading for the timeout
            log.debug("stream to %s ended: %s", handler.client_address[0], exc)
        except OSError as exc:
            log.warning("stream to %s failed: %s", handler.client_address[0], exc)


class MjpegServer(LatestFrame):
    """Serve the latest frame as MJPEG at http://bind:port/ and one JPEG at /snapshot.jpg."""

    def __init__(
        self,
        bind: str,
        port: int,
        max_clients: int = MAX_CLIENTS,
        timeout_s: float = CLIENT_TIMEOUT_S,
    ) -> None:
        super().__init__()
        handler = _handler_for(self, timeout_s)
        try:
            self._server = CappedServer((bind, port), handler, max_clients)
        except OSError as exc:
            raise UserError(
                f"preview.mjpeg_port: cannot serve MJPEG on {bind}:{port}: {exc.strerror or exc}"
            ) from None
        self.bind, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        log.info("MJPEG preview at http://%s:%d/", self.bind, self.port)

    def close(self) -> None:
        """Stop serving; open streams end."""
        if self.closed:
            return
        super().close()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MjpegServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: MjpegServer, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # socket timeout for the request line and every write

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("mjpeg %s: " + fmt, self.client_address[0], *args)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/snapshot.jpg":
                send_snapshot(self, server)
            elif path == "/":
                send_stream(self, server)
            else:
                self.send_error(404, "try / or /snapshot.jpg")

    return Handler


class PreviewOutput(Output):
    """The annotated frames on screen (--preview) and/or as MJPEG (preview.mjpeg_port)."""

    def __init__(self, window: PreviewWindow | None, mjpeg: MjpegServer | None) -> None:
        self.window, self.mjpeg = window, mjpeg
        self._camera: str | None = None  # several cameras: the one shown, the first seen

    def wants_image(self) -> bool:
        return True

    def wants_camera(self, camera: str) -> bool:
        """Several cameras: the window and the stream show the first one."""
        return self._camera in (None, camera)

    def show_camera(self, camera: str, image_bgr: np.ndarray) -> bool:
        self._camera = self._camera or camera
        return self.show(image_bgr) if camera == self._camera else True

    def show(self, image_bgr: np.ndarray) -> bool:
        if self.mjpeg is not None:
            self.mjpeg.update(image_bgr)
        return self.window.show(image_bgr) if self.window is not None else True

    def close(self) -> None:
        for ui in (self.window, self.mjpeg):
            if ui is not None:
                ui.close()
