"""Group unknown face crops by identity so a user can name them and retrain.

Input: the edge's unknown-faces folder (JPEG + .npy embedding + .json per capture), or any
folder of face photos (embedded with the face model). Output: `cluster_001/...` folders,
largest first, each with a contact sheet `cluster_001.jpg` beside it (outside the folder, so
a renamed folder moved into the dataset holds only faces); crops that match nobody go to
`unclustered/`; `overview.html` shows every cluster's crops with their capture times.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.images import iter_images, read_image
from edge.private import private_dir, write_private
from edge.progress import progress

log = logging.getLogger(__name__)

DEFAULT_DISTANCE = 0.5  # average-linkage cosine distance that still means "same person"
OVERVIEW = "overview.html"


@dataclass
class Item:
    """One face to cluster."""

    image: Path  # the crop (or photo) to copy into the cluster folder
    embedding: np.ndarray
    meta: Path | None = None  # the edge's .json beside a capture


def _from_captures(folder: Path) -> list[Item]:
    items = []
    for meta_path in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(meta_path.read_text())
            emb = np.load(folder / meta["embedding"]) if meta.get("embedding") else None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: skipped (%s)", meta_path, exc)
            continue
        image = folder / meta.get("image", meta_path.with_suffix(".jpg").name)
        if emb is not None and image.exists():
            items.append(Item(image, emb.astype(np.float32).ravel(), meta_path))
        else:
            log.warning("%s: skipped (no embedding or image beside it)", meta_path)
    return items


def load_items(folder: str | Path, cfg: Config, model_path: str | None = None) -> list[Item]:
    """Faces in `folder`: the edge's captures with their embeddings, else images embedded now."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UserError(f"{folder}: permission denied (the edge keeps it 0700: run as its user)")
    items = _from_captures(folder)
    if items:
        return items
    from edge.stills import StillRecognizer

    recognizer = StillRecognizer(cfg, model_path)
    for path in progress(list(iter_images([str(folder)])), desc="embed photos", unit="photo"):
        try:
            faces = recognizer(read_image(path))
        except UserError as exc:
            log.warning("%s", exc)
            continue
        if not faces:
            log.warning("%s: skipped (no face found)", path)
            continue
        best = max(faces, key=lambda f: f.face.box[2] * f.face.box[3])
        items.append(Item(path, np.asarray(best.embedding, np.float32).ravel()))
    return items


def cluster_embeddings(embeddings: np.ndarray, distance: float = DEFAULT_DISTANCE) -> np.ndarray:
    """Cluster labels (0.. by decreasing size; -1 for faces alone in their group)."""
    if len(embeddings) < 2:
        return np.full(len(embeddings), -1)
    from sklearn.cluster import AgglomerativeClustering  # the `convert` extra, not on the Pi

    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average"
    )
    raw = model.fit_predict(embeddings)
    ids, counts = np.unique(raw, return_counts=True)
    order = [i for _, i in sorted(zip(-counts, ids, strict=True)) if counts[ids == i][0] >= 2]
    remap = {old: new for new, old in enumerate(order)}
    return np.array([remap.get(r, -1) for r in raw])


def contact_sheet(images: list[Path], tile: int = 112, columns: int = 8) -> np.ndarray:
    """A grid of the first 64 images, each resized to `tile` px."""
    tiles = []
    for path in images[:64]:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is not None:
            tiles.append(cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA))
    if not tiles:
        return np.zeros((tile, tile, 3), np.uint8)
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * tile, min(columns, len(tiles)) * tile, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = t
    return sheet


def write_clusters(items: list[Item], labels: np.ndarray, out: str | Path) -> dict[str, int]:
    """Copy each item into cluster_NNN/ (or unclustered/), a contact sheet beside each; returns sizes."""
    out = Path(out)
    if out.is_dir() and any(out.glob("cluster_*")):
        raise UserError(f"{out}: already holds clusters; give an empty or new --out folder")
    sizes: dict[str, int] = {}
    private_dir(out)
    for item, label in zip(items, labels, strict=True):
        name = f"cluster_{label + 1:03d}" if label >= 0 else "unclustered"
        folder = private_dir(out / name)
        target = folder / item.image.name
        n = 1
        while target.exists():  # same file name from two subfolders
            target = folder / f"{item.image.stem}-{n}{item.image.suffix}"
            n += 1
        shutil.copy2(item.image, target)
        os.chmod(target, 0o600)
        sizes[name] = sizes.get(name, 0) + 1
    for name in sizes:
        folder = out / name
        images = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )
        ok, jpeg = cv2.imencode(".jpg", contact_sheet(images))
        if ok:
            write_private(out / f"{name}.jpg", jpeg.tobytes())
    return dict(sorted(sizes.items()))


def _caption(item: Item) -> tuple[float, str]:
    """(capture time, caption): the edge's capture time and its guess, else the file's mtime."""
    meta = {}
    if item.meta is not None:
        try:
            meta = json.loads(item.meta.read_text())
        except (OSError, ValueError):
            meta = {}
    when = meta.get("time")
    if not isinstance(when, int | float):
        when = item.image.stat().st_mtime
    stamp = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")
    guess = meta.get("name")
    return when, stamp + (f", seen as {guess}" if guess and guess != "unknown" else "")


def write_overview(
    items: list[Item], labels: np.ndarray, out: str | Path, thumb: int = 112
) -> Path:
    """out/overview.html: every cluster with all its crops and their capture times, one page."""
    groups: dict[str, list[Item]] = {}
    for item, label in zip(items, labels, strict=True):
        groups.setdefault(f"cluster_{label + 1:03d}" if label >= 0 else "unclustered", []).append(
            item
        )
    sections = []
    for name in sorted(groups, key=lambda n: (n == "unclustered", n)):
        cells, times = [], []
        for item in groups[name]:
            img = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
            if img is None:
                continue
            when, caption = _caption(item)
            times.append(when)
            scale = thumb / max(img.shape[:2])
            small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            data = base64.b64encode(cv2.imencode(".jpg", small)[1].tobytes()).decode()
            cells.append(
                f'<figure><img src="data:image/jpeg;base64,{data}" title="{html.escape(item.image.name)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        span = ""
        if times:
            first, last = (
                datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
                for t in (min(times), max(times))
            )
            span = f", {first}" + (f" to {last}" if last != first else "")
        sections.append(f"<h2>{name}/ ({len(groups[name])} faces{span})</h2>{''.join(cells)}")
    page = (
        "<!doctype html><meta charset=utf-8><title>unknown faces by person</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;margin:4px}"
        "figcaption{font-size:11px;max-width:112px}</style>"
        f"<h1>{len(items)} faces in {sum(n != 'unclustered' for n in groups)} clusters</h1>"
        "<p>Rename a folder to the person's name and move it into the dataset, then retrain.</p>"
        + "".join(sections)
    )
    path = Path(out) / OVERVIEW
    write_private(path, page.encode("utf-8"))  # faces: owner only, like the crops
    return path


def purity(labels: np.ndarray, truth: list[str]) -> float:
    """Share of clustered faces that belong to their cluster's majority identity."""
    clustered = [(lab, t) for lab, t in zip(labels, truth, strict=True) if lab >= 0]
    if not clustered:
        return 0.0
    majority = 0
    for lab in {lab for lab, _ in clustered}:
        names = [t for lb, t in clustered if lb == lab]
        majority += max(names.count(n) for n in set(names))
    return majority / len(clustered)
