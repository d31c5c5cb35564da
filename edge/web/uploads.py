"""Uploaded photos made safe to keep: format and size read from the whole file, decoded one at
a time and at a reduced scale, stored at most KEEP_SIDE pixels on the longest side. HEIC from
phones is decoded with pillow-heif and kept as JPEG."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import cv2
import numpy as np

from edge.errors import UserError
from edge.images import image_size

JPEG_MAX_PIXELS = 50_000_000  # a 50 MP phone photo: JPEG decodes at 1/2..1/8 scale, cheaply
OTHER_MAX_PIXELS = 12_000_000  # PNG, WebP, BMP, HEIC decode whole: OpenCV takes about 2x 36 MB
KEEP_SIDE = 2048  # longest side of a kept photo: faces for the model, small on the card
SAFE_FILE = re.compile(r"[^A-Za-z0-9._-]+")
HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis", b"avif")
_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
_decoding = threading.Lock()  # one decode at a time: eight uploads never hold eight images


def safe_upload_name(name: str | None, suffix: str) -> str:
    """A plain file name for an upload: its base name's safe characters and the image's suffix."""
    stem = Path((name or "").replace("\\", "/")).name
    stem = SAFE_FILE.sub("_", Path(stem).stem).strip("._")[:60] or "upload"
    return f"{stem}{suffix}"


def _kind(data: bytes) -> str | None:
    if data[:2] == b"\xff\xd8":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data[:2] == b"BM":
        return ".bmp"
    return None


def prepare_upload(data: bytes) -> tuple[bytes, str]:
    """The bytes to keep for an uploaded photo and their suffix; UserError when it is not a
    sane image. Photos larger than KEEP_SIDE are stored scaled down, as JPEG."""
    kind = _kind(data)
    if kind is None:
        if data[4:8] == b"ftyp" and data[8:12] in HEIC_BRANDS:
            with _decoding:
                return _keep(_heic(data)), ".jpg"
        raise UserError("not a JPEG, PNG, WebP, BMP or HEIC image")
    size = image_size(data)
    if size is None or 0 in size:
        raise UserError(f"not a readable {kind[1:].upper()} image (no image header found)")
    w, h = size
    cap = JPEG_MAX_PIXELS if kind == ".jpg" else OTHER_MAX_PIXELS
    if w * h > cap:
        raise UserError(
            f"{w}x{h} pixels is more than {cap // 1_000_000} million for a "
            f"{kind[1:].upper()}: scale it down" + (" or send it as JPEG" if kind != ".jpg" else "")
        )
    scale = 1
    while scale < 8 and max(w, h) // (scale * 2) >= KEEP_SIDE:
        scale *= 2
    with _decoding:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED[scale])
        if image is None:
            raise UserError("not a readable image (corrupt or unsupported format)")
        if scale == 1 and max(image.shape[:2]) <= KEEP_SIDE:
            return data, kind
        return _keep(image), ".jpg"


def _keep(image: np.ndarray) -> bytes:
    """A decoded photo as the JPEG to keep: at most KEEP_SIDE on its longest side."""
    f = KEEP_SIDE / max(image.shape[:2])
    if f < 1:
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise UserError("could not re-encode the photo")
    return out.tobytes()


def _heic(data: bytes) -> np.ndarray:
    """A phone's HEIC/HEIF photo as BGR (pillow-heif; its rotation applied)."""
    way_out = "share it as JPEG (on an iPhone: Settings > Camera > Formats > Most Compatible)"
    try:
        import pillow_heif
    except ImportError:
        raise UserError(f"a HEIC photo, and pillow-heif is not installed: {way_out}") from None
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        w, h = heif.size
        if w * h > OTHER_MAX_PIXELS:
            raise UserError(
                f"{w}x{h} pixels is more than {OTHER_MAX_PIXELS // 1_000_000} million for a HEIC: scale it down"
            )
        rgb = np.asarray(heif)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UserError(f"not a readable HEIC photo ({exc}): {way_out}") from None
    code = cv2.COLOR_RGBA2BGR if rgb.ndim == 3 and rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(rgb, code)
