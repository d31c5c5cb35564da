"""The event history as one of the loop's outputs: each event with its reasons and face crop
(and, with history.full_frame, the annotated frame it happened on) handed to edge.history."""

from __future__ import annotations

import logging
from typing import Any

from edge.config import Config
from edge.errors import UserError
from edge.explain import explain
from edge.history import History
from edge.publish import Output

log = logging.getLogger(__name__)


def open_history(cfg: Config) -> History:
    """The writer for cfg.history; UserError (one line naming history.path) when it cannot."""
    try:
        return History(cfg.history, cfg.device_id())
    except OSError as exc:
        raise UserError(
            f"{cfg.source_file}: history.path: cannot write {cfg.history.path}: {exc.strerror or exc}"
        ) from None


class HistoryOutput(Output):
    """Keeps every event on disk (edge/history.py); never blocks the loop."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.history = open_history(cfg)
        self._waiting: list[tuple[dict, dict, bytes | None]] = []  # for this frame's image

    def publish(self, emitted: Any, snapshot_jpeg: bytes | None, model: Any) -> None:
        item = (emitted.event, explain(emitted, model, self.cfg.recognize), snapshot_jpeg)
        if self.cfg.history.full_frame and emitted.event["type"] != "left":
            self._waiting.append(item)  # show() brings the frame, later in the same loop step
        else:
            self.history.add(*item)

    def wants_image(self) -> bool:
        return bool(self._waiting)

    def show(self, image_bgr: Any) -> bool:
        for item in self._waiting:
            self.history.add(*item, image_bgr)  # encoded on the writer thread
        self._waiting.clear()
        return True

    def reload(self, cfg: Config) -> None:
        if cfg.history != self.cfg.history or cfg.device_id() != self.cfg.device_id():
            try:
                history = open_history(cfg)
            except UserError as exc:
                log.error("reload: keeping the running event history: %s", exc)
                return
            self._flush()
            self.history.close()
            self.history = history
        self.cfg = cfg

    def close(self) -> None:
        self._flush()
        self.history.close()

    def _flush(self) -> None:
        for item in self._waiting:  # no frame came (the loop ended): the event still counts
            self.history.add(*item)
        self._waiting.clear()
