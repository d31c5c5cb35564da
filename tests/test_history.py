"""The event history on disk: written off the loop's thread, private, filtered and paged,
retention by age and size, `forget`, the export, and a kill -9 losing at most the last second."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from edge.config import load_config
from edge.history import History, HistoryReader, forget_person, rename_person
from tests.conftest import ROOT, run_edge

PHOTOS = ("Ariel_Sharon/Ariel_Sharon_0001.jpg", "Colin_Powell/Colin_Powell_0001.jpg")


def _cfg(tmp_path: Path, **over):
    return load_config(None, {"history.path": str(tmp_path / "hist" / "events.db"), **over})


def _event(name: str | None, t: float, visit: int = 1, kind: str | None = None) -> dict:
    return {"type": kind or ("recognized" if name else "unknown"), "name": name,
            "confidence": 0.9, "track": visit, "visit": visit, "box": [10, 20, 80, 90],
            "frame": 1, "source_time": 0.0, "time": t}  # fmt: skip


def _crop(data_dir: Path, i: int = 0) -> bytes:
    return (data_dir / "faces" / PHOTOS[i % 2]).read_bytes()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_events_are_kept_private_filtered_and_paged(tmp_path, data_dir):
    cfg = _cfg(tmp_path)
    os.umask(0o022)
    h = History(cfg.history, "door")
    now = time.time()
    yesterday = now - 86400
    for i in range(30):
        h.add(_event("Ann" if i % 3 else None, (yesterday if i < 10 else now) + i, visit=i),
              {"votes": 3}, _crop(data_dir, i))  # fmt: skip
    h.close()
    db = Path(cfg.history.path)
    assert _mode(db.parent) == 0o700
    assert _mode(db) == 0o600
    h2 = History(cfg.history, "garage")  # a second camera writing the same file
    h2.add(_event("Bob", now + 100), {}, None)
    time.sleep(1.5)  # committed within a second, while still open: -wal and -shm exist
    for suffix in ("-wal", "-shm"):
        assert _mode(db.with_name(db.name + suffix)) == 0o600, suffix
    h2.close()

    r = HistoryReader(db)
    newest = r.events(limit=5)
    assert [e["name"] for e in newest][:2] == ["Bob", "Ann"]
    assert newest[0]["camera"] == "garage" and newest[0]["snapshot"] is False
    assert newest[1]["why"] == {"votes": 3} and newest[1]["snapshot"] is True
    assert r.cameras() == ["door", "garage"]
    assert len(r.events(limit=100, camera="door")) == 30
    assert all(e["name"] is None for e in r.events(limit=100, person="unknown"))
    assert len(r.events(limit=100, person="unknown")) == 10
    today = datetime.fromtimestamp(now + 15).strftime("%Y-%m-%d")
    day = datetime.fromtimestamp(yesterday + 5).strftime("%Y-%m-%d")
    if today != day:  # not run across midnight
        assert len(r.events(limit=100, day=day)) == 10
    # paging: pages of 7, newest first, every event once
    seen, before = [], None
    while page := r.events(limit=7, before=before):
        seen += [e["id"] for e in page]
        before = page[-1]["id"]
    assert seen == sorted(seen, reverse=True) and len(seen) == 31
    assert r.snapshot(newest[1]["id"]) == _crop(data_dir, newest[1]["visit"])
    assert r.snapshot(10**6) is None


def test_history_survives_a_restart_on_the_events_page(tmp_path, data_dir, models_dir):
    """The web app reads the history: events written before a restart are there after it."""
    import http.client

    from edge.web.server import WebApp

    cfg = _cfg(tmp_path, **{"web.port": 0, "recognize.model": "",
                            "unknown_faces.dir": str(tmp_path / "u"),
                            "enroll.dataset": str(tmp_path / "d")})  # fmt: skip
    h = History(cfg.history, "door")
    h.add(_event("Ann", time.time(), visit=5), {"votes": 3, "votes_needed": 3, "max_crops": 6, "face_px": [80, 90], "min_face_px": 40}, _crop(data_dir))  # fmt: skip
    h.close()  # the loop stopped (or the power went)
    app = WebApp(cfg)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)

        def get(path):
            conn.request("GET", path, headers={"Host": f"127.0.0.1:{app.port}"})
            r = conn.getresponse()
            return r.status, r.read()

        status, body = get("/api/events?person=Ann")
        (event,) = json.loads(body)
        assert status == 200 and event["visit"] == 5 and event["snapshot"] is True
        status, body = get(f"/api/events/{event['id']}/snapshot.jpg")
        assert status == 200 and body == _crop(data_dir)
        assert get(f"/api/events/{event['id']}/frame.jpg")[0] == 404  # full_frame is off
        page = get("/events")[1]
        assert b"Ann" in page and b'name="camera"' not in page  # one camera: no camera filter
        assert b'id="older"' not in page  # one page
        assert json.loads(get("/api/events?person=Bob")[1]) == []
        assert json.loads(get(f"/api/events?before={event['id']}")[1]) == []
        assert get("/api/events?day=yesterday")[0] == 400
        assert get("/api/events?before=x")[0] == 400
    finally:
        conn.close()
        app.close()


def test_retention_by_age_and_by_size(tmp_path, data_dir):
    cfg = _cfg(tmp_path, **{"history.keep_days": 2, "history.max_mb": 1})
    h = History(cfg.history, "door")
    now = time.time()
    for i in range(5):
        h.add(_event("Old", now - 3 * 86400 + i), {}, _crop(data_dir))
    big = _crop(data_dir) * 4  # about 45 KB: 60 of them are well over 1 MB
    for i in range(60):
        h.add(_event("Ann", now + i, visit=i), {}, big)
    h.close()  # retention runs when the writer stops (and every minute)
    r = HistoryReader(cfg.history.path)
    kept = r.events(limit=1000)
    assert not any(e["name"] == "Old" for e in kept)
    assert 0 < len(kept) < 60
    assert kept[0]["visit"] == 59  # the newest stay
    assert os.path.getsize(cfg.history.path) < 1.3 * 1024 * 1024


def test_forget_person_removes_their_faces(tmp_path, data_dir):
    cfg = _cfg(tmp_path)
    h = History(cfg.history, "door")
    ann, bob = _crop(data_dir, 0), _crop(data_dir, 1)
    for i in range(4):
        h.add(_event("Ann", time.time() + i), {}, ann)
        h.add(_event("Bob", time.time() + i), {}, bob)
    h.close()
    assert forget_person(cfg.history.path, "Ann") == 4
    assert forget_person(cfg.history.path, "Ann") == 0
    assert forget_person(tmp_path / "none.db", "Ann") == 0
    names = {e["name"] for e in HistoryReader(cfg.history.path).events(limit=100)}
    assert names == {"Bob"}
    db = Path(cfg.history.path)
    on_disk = b"".join(p.read_bytes() for p in db.parent.iterdir())
    assert ann[1000:1400] not in on_disk  # overwritten, not just unlinked from the table
    assert bob[1000:1400] in on_disk
    assert rename_person(cfg.history.path, "Bob", "Robert") == 4
    assert {e["name"] for e in HistoryReader(cfg.history.path).events(limit=100)} == {"Robert"}
    assert HistoryReader(cfg.history.path).events(limit=1, person="Robert")[0]["name"] == "Robert"


def test_export_cli(tmp_path, data_dir, models_dir):
    cfg_file = tmp_path / "edge.yaml"
    db = tmp_path / "hist" / "events.db"
    cfg_file.write_text(f"history:\n  path: {db}\n  full_frame: true\n")
    proc = run_edge("history", "export", str(tmp_path / "out.zip"), "--config", str(cfg_file))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "no event history" in proc.stderr and str(db) in proc.stderr
    cfg = load_config(cfg_file)
    h = History(cfg.history, "door")
    h.add(_event("Ann", time.time()), {"votes": 3}, _crop(data_dir), b"\xff\xd8frame")
    h.add(_event(None, time.time(), visit=2), {}, _crop(data_dir, 1))
    h.close()
    out = tmp_path / "out.zip"
    proc = run_edge("history", "export", str(out), "--config", str(cfg_file))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["exported"] == 2
    assert _mode(out) == 0o600
    with zipfile.ZipFile(out) as z:
        lines = [json.loads(x) for x in z.read("events.jsonl").splitlines()]
        assert [e["name"] for e in lines] == ["Ann", None]
        assert z.read(f"crops/{lines[0]['id']}.jpg") == _crop(data_dir)
        assert z.read(f"frames/{lines[0]['id']}.jpg") == b"\xff\xd8frame"
    proc = run_edge("history", "export", str(out), "--person", "unknown", "--config", str(cfg_file))
    assert json.loads(proc.stdout)["exported"] == 1
    proc = run_edge("history", "export", str(out), "--day", "May 3", "--config", str(cfg_file))
    assert proc.returncode == 2 and "YYYY-MM-DD" in proc.stderr


WRITER = """
import sys, time
from edge.config import load_config
from edge.history import History
cfg = load_config(None, {"history.path": sys.argv[1]})
crop = open(sys.argv[2], "rb").read()
h = History(cfg.history, "door")
i = 0
while True:
    i += 1
    h.add({"type": "recognized", "name": "Ann", "confidence": 0.9, "track": i, "visit": i,
           "box": [1, 2, 3, 4], "frame": i, "source_time": 0.0, "time": time.time()}, {}, crop)
    print(i, time.time(), flush=True)
    time.sleep(0.02)
"""


def test_kill_9_while_writing_loses_at_most_the_last_second(tmp_path, data_dir, capsys):
    db = tmp_path / "hist" / "events.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(data_dir / "faces" / PHOTOS[0])],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    handed = []
    try:
        for line in proc.stdout:
            i, t = line.split()
            handed.append((int(i), float(t)))
            if len(handed) >= 150:  # about 3 s of events at 50 per second
                break
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    kept = {e["visit"] for e in HistoryReader(db).events(limit=10_000)}
    older = [i for i, t in handed if t < killed_at - 1.0]
    assert len(older) > 50
    missing = [i for i in older if i not in kept]
    assert not missing, f"{len(missing)} events handed over more than 1 s before the kill are lost"
    lost = [killed_at - t for i, t in handed if i not in kept]
    with capsys.disabled():
        print(
            f"\nkill -9 after {len(handed)} events (50/s): {len(lost)} not on disk, handed "
            f"over at most {max(lost, default=0):.3f} s before the kill"
        )


def test_unwritable_history_is_one_line(tmp_path, models_dir):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "edge.yaml"
    cfg.write_text(f"recognize:\n  model: ''\nhistory:\n  path: {blocker}/events.db\n")
    proc = run_edge("--config", str(cfg), "--source", "0", "--max-frames", "1", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "history.path" in proc.stderr


@pytest.mark.slow
def test_the_loop_writes_its_events_to_the_history(tmp_path, data_dir, trained_model):
    from tests.doorbell import make_clip

    make_clip(data_dir, tmp_path / "clip", visits=3, seed=5)
    db = tmp_path / "hist" / "events.db"
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"recognize:\n  model: {trained_model}\nunknown_faces:\n  dir: {tmp_path / 'u'}\n"
        f"history:\n  path: {db}\n  full_frame: true\n"
    )
    proc = run_edge(
        "--config", str(config), "--source", str(tmp_path / "clip" / "clip.mp4"),
        "--sink", "stdout", "--every-frame", timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    kept = list(reversed(HistoryReader(db).events(limit=1000)))
    assert len(printed) >= 2
    assert [(e["type"], e["name"], e["visit"]) for e in kept] == [
        (e["type"], e["name"], e["visit"]) for e in printed
    ]
    arrived = [e for e in kept if e["type"] != "left"]
    assert all(e["snapshot"] and e["frame_image"] for e in arrived)
    assert all("face_px" in e["why"] for e in kept)
    assert any("distance" in e["why"] for e in arrived)


def test_events_page_pages_and_filters_by_camera(tmp_path, data_dir, models_dir):
    import http.client
    import re

    from edge.web.server import EVENTS_PAGE, WebApp

    cfg = _cfg(tmp_path, **{"web.port": 0, "recognize.model": "",
                            "unknown_faces.dir": str(tmp_path / "u"),
                            "enroll.dataset": str(tmp_path / "d")})  # fmt: skip
    for camera in ("door", "garage"):
        h = History(cfg.history, camera)
        for i in range(EVENTS_PAGE):
            h.add(_event(None, time.time(), visit=i), {"face_px": [80, 90], "min_face_px": 40}, None)  # fmt: skip
        h.close()
    app = WebApp(cfg)
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)

    def page(path):
        conn.request("GET", path, headers={"Host": f"127.0.0.1:{app.port}"})
        r = conn.getresponse()
        body = r.read().decode()
        assert r.status == 200, body
        return body

    try:
        first = page("/events")
        assert 'name="camera"' in first and first.count('class="event"') == EVENTS_PAGE
        assert first.count(" &middot; garage &middot; ") == EVENTS_PAGE  # the newest: the garage's
        older = re.search(r'id="older" href="([^"]+)"', first).group(1).replace("&amp;", "&")
        second = page(older)
        assert second.count(" &middot; door &middot; ") == EVENTS_PAGE
        door = page("/events?camera=door")
        assert (
            door.count(" &middot; door &middot; ") == EVENTS_PAGE
            and " &middot; garage &middot; " not in door
        )
    finally:
        conn.close()
        app.close()
