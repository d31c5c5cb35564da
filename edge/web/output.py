"""The web app as one of the loop's outputs: the live feed, the Status page, the library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.config import Config
from edge.publish import Output
from edge.web.server import WebApp


class WebOutput(Output):
    """Feeds the web app's events, status and watched frames; serves until close()."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.app = WebApp(cfg)
        if len(cfg.cameras) > 1:
            self.app.feed.add_cameras([s.camera.name for s in cfg.cameras])

    def publish(self, emitted: Any, snapshot_jpeg: bytes | None, model: Any) -> None:
        if not self.cfg.history.enabled:  # else the Events page reads the history
            self.app.feed.event(emitted, snapshot_jpeg, model, self.cfg.recognize)
        else:  # who is here, and news for the live pages
            self.app.feed.seen(emitted.event)

    def tick(self, status: Callable[[], dict[str, Any]]) -> None:
        if self.app.feed.status_due():
            self.app.feed.status(status())

    def wants_image(self) -> bool:
        return self.app.feed.frames.wanted

    def show(self, image_bgr: Any) -> bool:
        self.app.feed.frames.update(image_bgr)
        return True

    def wants_camera(self, camera: str) -> bool:
        """Several cameras: whether someone watches this one's Live view."""
        frames = self.app.feed.camera_frames.get(camera)
        return frames.wanted if frames is not None else self.wants_image()

    def show_camera(self, camera: str, image_bgr: Any) -> bool:
        """Several cameras: this one's annotated frame for its Live view."""
        frames = self.app.feed.camera_frames.get(camera)
        if frames is None:
            return self.show(image_bgr)
        frames.update(image_bgr)
        return True

    def reload(self, cfg: Config) -> None:
        self.cfg = cfg
        self.app.reload(cfg)  # paths, the model, the password, the history; not the port

    def close(self) -> None:
        self.app.close()
