"""A face-filling photo set built from ../shared/data/faces: each photo cut to its face box.

Like a selfie, a passport photo or a tightly cropped LFW picture: the face fills the frame.
The box comes from res10 run on the whole uncut photo at full size (a reference detector,
not the one under test), with `margin` of the box added on each side.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2

MARGIN = 0.1


def face_filling_set(faces_dir: Path, out: Path, margin: float = MARGIN) -> list[Path]:
    """Write out/<Name>/<photo>.png, each cut to its face box plus `margin`; the paths written."""
    from edge.config import load_config
    from edge.detect import create_detector
    from edge.images import read_image

    cfg = load_config(None).detect
    reference = create_detector(replace(cfg, downscale_width=4096), "dnn", "res10")
    written = []
    for person in sorted(p for p in faces_dir.iterdir() if p.is_dir()):
        for photo in sorted(person.iterdir()):
            image = read_image(photo)
            faces = reference.detect(image)
            if not faces:
                continue
            x, y, w, h = max(faces, key=lambda f: f.box[2] * f.box[3]).box
            mx, my = round(margin * w), round(margin * h)
            x0, y0 = max(0, x - mx), max(0, y - my)
            x1, y1 = min(image.shape[1], x + w + mx), min(image.shape[0], y + h + my)
            target = out / person.name / f"{photo.stem}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), image[y0:y1, x0:x1])
            written.append(target)
    return written
