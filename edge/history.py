"""The event history on disk: every event with its reasons and face crop, in one SQLite file.

The loop's output (edge/history_output.py) hands events to `History.add` (never blocks: a
queue); a writer thread commits them at once, at the latest COMMIT_S after they arrive, with
the WAL synced (a kill -9 or a power cut loses at most that last second). Retention by age and size runs on the writer thread.
Readers (`HistoryReader`: the web app, `python -m edge history`) open their own connections.
The database and its -wal/-shm files are 0600 in a 0700 folder: they hold faces.
`forget_person(db_path, name)` removes a person's events and `rename_person(db_path, old,
new)` gives them the new name (the library's `forget` and `rename` call them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import HistoryConfig
from edge.errors import UserError
from edge.private import private_dir, private_file

log = logging.getLogger(__name__)

COMMIT_S = 1.0  # an event is on disk at most this long after the loop handed it over
PRUNE_EVERY_S = 60.0  # retention checks (age, size)
PRUNE_TO = 0.9  # over max_mb, the oldest events go until the file is this fraction of it
QUEUE_MAX = 10_000  # events waiting for the disk; beyond, new ones are dropped (and logged)
FRAME_QUALITY = 80  # JPEG quality of whole frames (history.full_frame)
BUSY_MS = 5000  # wait this long for another connection's write lock

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    camera TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT,
    visit INTEGER,
    event TEXT NOT NULL,
    why TEXT NOT NULL,
    crop BLOB,
    frame BLOB
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_name_time ON events (name, time);
"""
COLUMNS = "id, time, camera, type, name, visit, event, why, crop IS NOT NULL, frame IS NOT NULL"


def _connect(path: str | Path, create: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with the settings every user of the file shares."""
    path = Path(path)
    if create:
        private_dir(path.parent)
        private_file(path)  # 0600 before SQLite opens it: its -wal and -shm copy the mode
    elif not path.is_file():
        raise UserError(f"{path}: no event history there (history.path)")
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, check_same_thread=False)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table: files shrink
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")  # each commit synced: survives a power cut
        conn.execute("PRAGMA secure_delete = ON")  # a forgotten face is overwritten, not freed
        if create:
            conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise UserError(f"{path}: not an event history ({exc})") from None
    return conn


def _jpeg(frame: bytes | np.ndarray | None) -> bytes | None:
    if frame is None or isinstance(frame, bytes):
        return frame
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, FRAME_QUALITY])
    return buf.tobytes() if ok else None


def _row(r: tuple) -> dict[str, Any]:
    eid, t, camera, _, _, _, event, why, has_crop, has_frame = r
    return {"id": eid, **json.loads(event), "camera": camera, "why": json.loads(why),
            "snapshot": bool(has_crop), "frame_image": bool(has_frame)}  # fmt: skip


def day_range(day: str) -> tuple[float, float]:
    """UNIX times [start, end) of a local calendar day 'YYYY-MM-DD'; UserError when malformed."""
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise UserError(f"day must be YYYY-MM-DD, got {day!r}") from None
    start = datetime(d.year, d.month, d.day)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def _where(
    person: str | None = None, day: str | None = None, camera: str | None = None, before: int | None = None
) -> tuple[str, list[Any]]:  # fmt: skip
    clauses, args = [], []
    if person == "unknown":
        clauses.append("name IS NULL")
    elif person:
        clauses.append("name = ?")
        args.append(person)
    if day:
        clauses.append("time >= ? AND time < ?")
        args.extend(day_range(day))
    if camera:
        clauses.append("camera = ?")
        args.append(camera)
    if before is not None:
        clauses.append("id < ?")
        args.append(before)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


class History:
    """The writer: the loop's output that keeps every event on disk."""

    def __init__(self, cfg: HistoryConfig, camera: str) -> None:
        self.cfg, self.camera = cfg, camera
        self.path = Path(cfg.path)
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[tuple | None] = queue.Queue(QUEUE_MAX)
        self._conn = _connect(self.path, create=True)
        self._prune()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()
        log.info("event history in %s", self.path)

    def add(
        self,
        event: dict[str, Any],
        why: dict[str, Any],
        crop_jpeg: bytes | None,
        frame: bytes | np.ndarray | None = None,
    ) -> None:
        """Queue one event for the disk; returns at once. `frame`: the whole frame as JPEG
        or as an image (encoded on the writer thread), kept when history.full_frame."""
        try:
            self._queue.put_nowait((event, why, crop_jpeg, frame if self.cfg.full_frame else None))  # fmt: skip
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("event history: the disk is too slow, %d events not kept", self.dropped)

    def close(self) -> None:
        """Write what is queued and close the file."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        next_prune = time.monotonic() + PRUNE_EVERY_S
        stop = False
        while not stop:
            rows: list[tuple] = []
            try:
                item = self._queue.get(timeout=max(0.1, next_prune - time.monotonic()))
            except queue.Empty:
                item = ()
            deadline = time.monotonic() + COMMIT_S / 2  # a flood still commits this often
            while True:  # what is queued already joins this commit
                if item is None:
                    stop = True
                    break
                if item:
                    rows.append(item)
                if time.monotonic() >= deadline:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if rows:
                self._write(rows)
            if stop or time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                self._prune()
        self._conn.close()

    def _write(self, items: list[tuple]) -> None:
        rows = [
            (e["time"], e.get("camera") or self.camera, e["type"], e["name"], e.get("visit"), json.dumps(e),
             json.dumps(why), crop, _jpeg(frame))
            for e, why, crop, frame in items
        ]  # fmt: skip
        try:
            with self._conn:
                self._conn.executemany(
                    "INSERT INTO events (time, camera, type, name, visit, event, why, crop, frame)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self.written += len(rows)
        except sqlite3.Error as exc:  # a full or failing disk: the loop goes on without them
            log.error("event history: %d events not kept: %s", len(rows), exc)

    def _prune(self) -> None:
        """Drop events older than keep_days, then the oldest while the file is over max_mb."""
        try:
            with self._conn:
                gone = self._conn.execute(
                    "DELETE FROM events WHERE time < ?", (time.time() - self.cfg.keep_days * 86400,)
                ).rowcount
            limit = self.cfg.max_mb * 1024 * 1024
            while (used := self._used_bytes()) > limit:
                (count,) = self._conn.execute("SELECT count(*) FROM events").fetchone()
                if not count:
                    break
                # down to PRUNE_TO of the limit, so that it is not pruned again at once
                n = max(1, math.ceil(count * (used - PRUNE_TO * limit) / used))
                with self._conn:
                    gone += self._conn.execute(
                        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)",
                        (n,),
                    ).rowcount
            if gone:
                self._conn.executescript("PRAGMA incremental_vacuum;")  # executescript: to the end
                log.info("event history: %d old events removed (keep_days, max_mb)", gone)
        except sqlite3.Error as exc:
            log.error("event history: retention failed: %s", exc)

    def _used_bytes(self) -> int:
        (pages,) = self._conn.execute("PRAGMA page_count").fetchone()
        (free,) = self._conn.execute("PRAGMA freelist_count").fetchone()
        (size,) = self._conn.execute("PRAGMA page_size").fetchone()
        return (pages - free) * size


class HistoryReader:
    """Queries for the Events page, the API and the export; a connection per call."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection | None]:
        if not self.path.is_file():
            yield None  # no event yet: the loop has not started writing
            return
        conn = _connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def events(
        self,
        limit: int = 50,
        person: str | None = None,
        day: str | None = None,
        camera: str | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """The newest `limit` events matching the filters, newest first; `before` an id
        (paging: the last id of the previous page); `person` a name or "unknown"."""
        where, args = _where(person, day, camera, before)
        with self._conn() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT {COLUMNS} FROM events{where} ORDER BY id DESC LIMIT ?", [*args, limit]
            ).fetchall()
        return [_row(r) for r in rows]

    def cameras(self) -> list[str]:
        """The cameras that wrote events here."""
        with self._conn() as conn:
            if conn is None:
                return []
            return [
                c for (c,) in conn.execute("SELECT DISTINCT camera FROM events ORDER BY camera")
            ]

    def snapshot(self, event_id: int) -> bytes | None:
        """The face crop (JPEG) of one event, or None."""
        return self._blob("crop", event_id)

    def frame(self, event_id: int) -> bytes | None:
        """The whole frame (JPEG) of one event when history.full_frame kept it, or None."""
        return self._blob("frame", event_id)

    def _blob(self, column: str, event_id: int) -> bytes | None:
        with self._conn() as conn:
            if conn is None:
                return None
            row = conn.execute(f"SELECT {column} FROM events WHERE id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def export(self, out: str | Path, person: str | None = None, day: str | None = None) -> int:
        """Write a ZIP (0600): events.jsonl, crops/<id>.jpg and frames/<id>.jpg; returns the
        number of events."""
        where, args = _where(person, day)
        out = Path(out)
        tmp = out.with_name(f".{out.name}.tmp")
        with self._conn() as conn:
            if conn is None:
                raise UserError(f"{self.path}: no event history there (history.path)")
            try:
                private_file(tmp)
                with zipfile.ZipFile(tmp, "w") as z:
                    lines = []
                    cur = conn.execute(f"SELECT {COLUMNS}, crop, frame FROM events{where} ORDER BY id", args)  # fmt: skip
                    for r in cur:
                        e = _row(r[:10])
                        lines.append(json.dumps(e) + "\n")
                        for folder, blob in (("crops", r[10]), ("frames", r[11])):
                            if blob is not None:
                                z.writestr(f"{folder}/{e['id']}.jpg", blob)
                    z.writestr("events.jsonl", "".join(lines))
                tmp.replace(out)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise UserError(f"{out}: cannot write: {exc.strerror or exc}") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            n = len(lines)
        return n


def forget_person(db_path: str | Path, name: str) -> int:
    """Remove every event of `name` from the history at `db_path` (their faces overwritten,
    the WAL emptied); returns how many. No history there: 0."""
    if not Path(db_path).is_file():
        return 0
    conn = _connect(db_path)
    try:
        with conn:
            n = conn.execute("DELETE FROM events WHERE name = ?", (name,)).rowcount
        conn.executescript("PRAGMA incremental_vacuum;")  # executescript: to the end
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if n:
        log.info("event history: %d events of %s removed", n, name)
    return n


def rename_person(db_path: str | Path, old: str, new: str) -> int:
    """Give `old`'s events in the history at `db_path` the name `new`; returns how many.
    No history there: 0."""
    if not Path(db_path).is_file():
        return 0
    conn = _connect(db_path)
    try:
        with conn:
            n = conn.execute(
                "UPDATE events SET name = ?, event = json_set(event, '$.name', ?) WHERE name = ?",
                (new, new, old),
            ).rowcount
    finally:
        conn.close()
    return n
