"""Index a photo library in SQLite (who is in which photo) and answer "which photos show X?".

`scan` walks a folder tree in parallel worker processes and is resumable: photos already
indexed with the same size, mtime and face model are skipped, and progress is committed
as it goes, so an interrupted scan continues where it stopped.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config
from edge.errors import UserError
from edge.hashing import file_hash
from edge.images import file_problem, iter_images
from edge.private import private_file
from edge.progress import progress

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    path TEXT PRIMARY KEY, size INTEGER, mtime REAL, width INTEGER, height INTEGER,
    model TEXT, error TEXT, scanned REAL);
CREATE TABLE IF NOT EXISTS faces (
    photo TEXT NOT NULL REFERENCES photos(path) ON DELETE CASCADE,
    x INTEGER, y INTEGER, w INTEGER, h INTEGER, name TEXT, confidence REAL, embedding BLOB);
CREATE INDEX IF NOT EXISTS faces_name ON faces(name);
CREATE INDEX IF NOT EXISTS faces_photo ON faces(photo);
CREATE TABLE IF NOT EXISTS models (id TEXT PRIMARY KEY, path TEXT, labels TEXT);
"""


@dataclass
class ScanReport:
    """What one scan did."""

    found: int = 0
    skipped: int = 0
    removed: int = 0
    scanned: int = 0
    failed: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def photos_per_s(self) -> float:
        return self.scanned / self.seconds if self.seconds else 0.0


TABLES = {
    "photos": {"path", "size", "mtime", "width", "height", "model", "error", "scanned"},
    "faces": {"photo", "x", "y", "w", "h", "name", "confidence", "embedding"},
    "models": {"id", "path", "labels"},
}


def _foreign(db: sqlite3.Connection) -> str | None:
    """What makes an existing database not ours (another program's tables), or None."""
    tables = {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if not tables:
        return None  # new or empty: ours to fill
    for table, columns in TABLES.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if have != columns:
            return f"tables {', '.join(sorted(tables))}"
    return None


def open_index(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) the index database; another program's is left untouched."""
    new = not Path(path).exists()
    try:
        if new:  # SQLite gives its -wal and -shm files the database's mode
            try:
                private_file(path)
            except OSError as exc:
                raise UserError(
                    f"{path}: cannot create the index ({exc.strerror or exc})"
                ) from None
        db = sqlite3.connect(str(path))
        foreign = _foreign(db)
        if foreign:
            db.close()
            raise UserError(
                f"{path}: an SQLite database of another program ({foreign}), left untouched: "
                "give --index a new file"
            )
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{path}: not a usable index database ({exc})") from None
    return db


def model_id(model_path: str) -> str:
    """A short hash of the face model file, so a new model re-scans the photos."""
    return file_hash(model_path)[:16]


_worker = None


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the scan process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(cfg: Config, model_path: str) -> None:
    global _worker
    from edge.stills import StillRecognizer

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    cv2.setNumThreads(1)
    cfg = replace(
        cfg, recognize=replace(cfg.recognize, threads=1), detect=replace(cfg.detect, threads=1)
    )
    _worker = StillRecognizer(cfg, model_path)


def _scan_one(path: str) -> tuple[str, int, int, list[tuple], str | None]:
    from edge.images import read_image

    try:
        image = read_image(path)
    except UserError as exc:
        return path, 0, 0, [], str(exc)
    faces = []
    for sf in _worker(image):
        x, y, w, h = sf.face.box
        emb = np.asarray(sf.embedding, dtype=np.float32).tobytes()
        faces.append((x, y, w, h, sf.name, float(sf.confidence), emb))
    return path, image.shape[1], image.shape[0], faces, None


def _todo(
    db: sqlite3.Connection, root: str, model: str, report: ScanReport, seen: set[str]
) -> Iterator[tuple[str, int, float]]:
    for p in iter_images([root]):
        report.found += 1
        problem = file_problem(p)
        if problem is None and not _utf8(str(p)):
            problem = "the file name is not valid UTF-8 (rename it, e.g. convmv -f latin1 -t utf8)"
        if problem:
            report.failed += 1
            log.warning("skipped %s: %s", shown_path(p), problem)
            continue
        path = os.path.abspath(p)  # as scanned (made absolute), symlinks kept: what find prints
        seen.add(path)
        try:
            st = os.stat(path)
        except OSError:
            continue
        row = db.execute("SELECT size, mtime, model FROM photos WHERE path = ?", (path,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime and row[2] == model:
            report.skipped += 1
            continue
        yield path, st.st_size, st.st_mtime


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_path(path: str | Path) -> str:
    """A path for a log line, its undecodable bytes written as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class _Terminated(Exception):
    """SIGTERM during a scan: stop like Ctrl-C."""


def _on_sigterm(_sig: int, _frame: object) -> None:
    raise _Terminated


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the workers now (not after their current photo)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.join(timeout=5)


def scan(
    photos: str, index: str, cfg: Config, model_path: str | None = None, jobs: int = 0
) -> ScanReport:
    """Index every photo under `photos` into `index`; resumable; Ctrl-C keeps what is done."""
    model_path = model_path or cfg.recognize.model
    if not Path(photos).exists():
        raise UserError(f"{photos}: no such file or folder")
    from edge.recognize import FaceModel

    labels = FaceModel.load(model_path, cfg.recognize).labels  # a bad model fails here, in one line
    model = model_id(model_path)
    db = open_index(index)
    db.execute(
        "INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
        (model, str(Path(model_path).resolve()), json.dumps(labels)),
    )
    report = ScanReport()
    seen: set[str] = set()
    todo = list(_todo(db, photos, model, report, seen))
    report.removed = _prune(db, photos, seen)
    stats = {p: (size, mtime) for p, size, mtime in todo}
    jobs = jobs or os.cpu_count() or 1
    start = last = time.monotonic()
    pool = ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(cfg, model_path)
    )
    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    bar = progress(total=len(stats), desc="scan", unit="photo")
    try:
        for i, (path, w, h, faces, error) in enumerate(pool.map(_scan_one, stats, chunksize=4), 1):
            size, mtime = stats[path]
            db.execute("DELETE FROM faces WHERE photo = ?", (path,))
            db.execute(
                "INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, size, mtime, w, h, model, error, time.time()),
            )
            db.executemany(
                "INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(path, *f) for f in faces]
            )
            report.scanned += 1
            report.faces += len(faces)
            if error:
                report.failed += 1
                log.warning("%s", error)
            bar.update()
            bar.set_postfix(faces=report.faces, refresh=False)
            now = time.monotonic()
            if now - last >= 1.0 or i == len(stats):
                db.commit()
                last = now
    except (KeyboardInterrupt, _Terminated):
        report.interrupted = True
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the summary
        _stop_workers(pool)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        db.commit()
        db.close()
        pool.shutdown(wait=not report.interrupted, cancel_futures=True)
        bar.close()
    report.seconds = time.monotonic() - start
    return report


def _prune(db: sqlite3.Connection, photos: str, seen: set[str]) -> int:
    """Forget indexed photos under `photos` that are gone from disk; returns how many."""
    top = os.path.abspath(photos)
    prefix = top.rstrip(os.sep) + os.sep
    gone = [
        p
        for (p,) in db.execute("SELECT path FROM photos")
        if (p == top or p.startswith(prefix)) and p not in seen and not os.path.exists(p)
    ]
    db.executemany("DELETE FROM photos WHERE path = ?", [(p,) for p in gone])
    db.commit()
    return len(gone)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def find(name: str, index: str) -> list[tuple[str, float, list[tuple[int, int, int, int]]]]:
    """Photos showing `name` (spelling-insensitive), newest first: (path, best confidence, boxes)."""
    if not Path(index).is_file():
        raise UserError(
            f"{index}: no such index (create it with python -m convert scan PHOTOS --index {index})"
        )
    db = open_index(index)
    known = {n for (n,) in db.execute("SELECT DISTINCT name FROM faces")}
    for (labels,) in db.execute("SELECT labels FROM models"):
        known.update(json.loads(labels))
    names = [n for n in known if _norm(n) == _norm(name)]
    if not names:
        known = sorted(known)
        raise UserError(
            f"{name}: nobody of that name in {index} (names there: {', '.join(known) or 'none'})"
        )
    rows = db.execute(
        f"""SELECT f.photo, f.confidence, f.x, f.y, f.w, f.h FROM faces f JOIN photos p ON p.path = f.photo
            WHERE f.name IN ({",".join("?" * len(names))}) ORDER BY p.mtime DESC, f.photo""",
        names,
    ).fetchall()
    db.close()
    out: dict[str, tuple[float, list]] = {}
    for photo, conf, x, y, w, h in rows:
        best, boxes = out.get(photo, (0.0, []))
        out[photo] = (max(best, conf), [*boxes, (x, y, w, h)])
    return [(photo, conf, boxes) for photo, (conf, boxes) in out.items()]


def write_html(name: str, results: list, out: str | Path, thumb: int = 200) -> None:
    """A self-contained page of thumbnails (faces boxed) for `find --html`."""
    cells = []
    for photo, conf, boxes in results:
        image = cv2.imread(photo, cv2.IMREAD_COLOR)
        if image is None:
            continue
        for x, y, w, h in boxes:
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), max(2, image.shape[1] // 200))
        scale = thumb / max(image.shape[:2])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        data = base64.b64encode(cv2.imencode(".jpg", small)[1].tobytes()).decode()
        title = html.escape(photo)
        cells.append(
            f'<figure><a href="file://{title}"><img src="data:image/jpeg;base64,{data}"></a>'
            f"<figcaption>{html.escape(Path(photo).name)} ({conf:.2f})</figcaption></figure>"
        )
    page = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(name)}</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;margin:6px}"
        "figcaption{font-size:12px;max-width:200px;overflow:hidden}</style>"
        f"<h1>{html.escape(name)}: {len(results)} photos</h1>{''.join(cells)}"
    )
    Path(out).write_text(page, encoding="utf-8")
