"""The outputs `python -m edge` hands the capture loop: the sink (MQTT or stdout), the
unknown-face store, the web app, the preview window and MJPEG stream, the event history. Built here so the loop knows none of them."""

from __future__ import annotations

import argparse

from edge.config import Config
from edge.publish import Output, create_sink
from edge.unknowns import UnknownOutput


def build_outputs(cfg: Config, args: argparse.Namespace) -> list[Output]:
    """The sink first, then the web app, the preview and the history when configured, the unknown-face
    store last (its disk writes come after what is shown); on an error the ones already
    built are closed."""
    outputs: list[Output] = [create_sink(cfg, getattr(args, "sink", None))]
    try:
        if cfg.web.port > 0:
            from edge.web.output import WebOutput

            outputs.append(WebOutput(cfg))
        preview = getattr(args, "preview", False)
        if preview or cfg.preview.mjpeg_port > 0:
            from edge.preview import MjpegServer, PreviewOutput, PreviewWindow

            shown = PreviewOutput(None, None)
            outputs.append(shown)  # first: closed with the others should the next line fail
            if cfg.preview.mjpeg_port > 0:
                shown.mjpeg = MjpegServer(cfg.preview.mjpeg_bind, cfg.preview.mjpeg_port)
            if preview:
                shown.window = PreviewWindow()
        if cfg.history.enabled:
            from edge.history_output import HistoryOutput

            outputs.append(HistoryOutput(cfg))
        if cfg.library.share:
            from edge.share.service import ShareOutput

            outputs.append(ShareOutput(cfg))
        outputs.append(UnknownOutput(cfg))
    except BaseException:
        for out in outputs:
            out.close()
        raise
    return outputs
