"""The int8 backbone the device keeps (models/backbone.tflite + backbone.json): made once.

FaceNet, full int8 (uint8 RGB crop in, embedding out), quantized on the faces of the sample
clip setup.sh fetches (no photos of the household needed; the faces found may differ a little
between machines, and so the file). The
face library (edge/library/first_model.py) starts a first model from it without TensorFlow;
its one-wide probability output is a constant: the device's head (the store) replaces it.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.errors import UserError
from edge.hashing import file_hash
from edge.head import Head
from edge.library.files import temp_beside, write_atomic

log = logging.getLogger("convert.backbone_file")

BACKBONE_FILE = "backbone.tflite"
SAMPLE_CLIP = "carphone_pristine.mp4"
N_REPRESENTATIVE = 24  # as convert train (export.MAX_REPRESENTATIVE)


def sample_crops(clip: Path, detect: DetectConfig, size: int, n: int = N_REPRESENTATIVE) -> list:
    """Up to `n` aligned RGB face crops from frames spread over `clip`."""
    from edge.stills import main_crop

    cap = cv2.VideoCapture(str(clip))
    if not cap.isOpened():
        raise UserError(f"{clip}: cannot read the sample clip (run ./setup.sh to fetch it)")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        wanted = set(np.linspace(0, total - 1, 2 * n).astype(int).tolist())
        crops, index = [], 0
        while len(crops) < n:
            ok, frame = cap.read()
            if not ok:
                break
            if index in wanted:
                crop, _ = main_crop(frame, detect, size)
                if crop is not None:
                    crops.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        cap.release()
    if len(crops) < n // 2:
        raise UserError(f"{clip}: only {len(crops)} face crop(s) found, need {n // 2}")
    return crops


def make(models_dir: Path, detect: DetectConfig, out: Path | None = None) -> dict:
    """Write backbone.tflite and backbone.json (its hash, outputs, how it was made)."""
    from convert import export
    from convert.backbone import load_facenet
    from convert.tfquiet import import_tensorflow_quietly
    from edge.tflite import load_interpreter

    t0 = time.monotonic()
    out = Path(out or models_dir / BACKBONE_FILE)
    clip = Path(models_dir) / SAMPLE_CLIP
    import_tensorflow_quietly()
    backbone = load_facenet(models_dir)
    t_load = time.monotonic()
    crops = np.stack(sample_crops(clip, detect, backbone.input_size))
    d = backbone.embedding_size
    # one class: the probability output is 1.0 for every crop; the device's head replaces it
    head = Head(np.full((d, 1), d**-0.5, np.float32), np.zeros(1, np.float32), np.zeros((1, d)))
    log.info("quantizing FaceNet to int8 on %d crops of %s", len(crops), clip.name)
    data = export.convert(backbone, head, crops)
    t_export = time.monotonic()
    tmp = temp_beside(out)
    try:
        tmp.write_bytes(data)
        outputs = export.output_indices(load_interpreter(tmp, 1), d, 1)
        check = export.compare(tmp, backbone, head, crops[:, :, ::-1].copy())
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {
        "format": 1,
        "file": out.name,
        "sha256": file_hash(out),
        "backbone": backbone.name,
        "weights": backbone.fingerprint,
        "input_size": backbone.input_size,
        "input": "uint8 RGB crop, 1 x S x S x 3, aligned by edge.align.Aligner",
        "normalization": backbone.normalization,
        "embedding_size": d,
        "outputs": outputs,
        "representative": f"{len(crops)} face crops of {clip.name}",
        "int8_vs_float": {k: v for k, v in check.items() if k != "top1_agreement"},
        "made_on": platform.machine(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_atomic(out.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode(), 0o644)
    seconds = {
        "load_backbone": round(t_load - t0, 1),
        "quantize": round(t_export - t_load, 1),
        "total": round(time.monotonic() - t0, 1),
    }
    log.info("wrote %s (%.1f MB) and %s", out, out.stat().st_size / 1e6, out.with_suffix(".json"))
    return {"path": str(out), **meta, "mb": round(out.stat().st_size / 1e6, 2), "seconds": seconds}
