"""The household's face library over MQTT (library.share): publish this Pi's people, adopt
the others'.

One retained message per person under `<share_topic>/people/<id>` (the id is the person's
slug); this Pi's state under `<share_topic>/devices/<device>/` (`status` online/offline,
`library` JSON). A worker thread syncs whenever faces.json changes (a local change, in this
process or another) or a newer record arrives: the library owner merges, adopts and commits;
then every person whose merged record differs from the broker's is published.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from edge.config import Config
from edge.errors import ModelError, UserError
from edge.hashing import file_hash
from edge.library import FaceLibrary
from edge.library.first_model import BACKBONE
from edge.library.generation import read_meta
from edge.mqtt.messages import Message, check_topic_part, iso, to_json
from edge.mqtt.transport import Transport
from edge.names import UNKNOWN_DIR
from edge.publish import Output
from edge.share.records import Person, Photo, RecordError, message, read_message

log = logging.getLogger("edge.share")

POLL_S = 0.25  # how often faces.json is looked at


def backbone_hash(model: Path) -> str:
    """sha256 of the int8 model file (with no model yet, of the backbone that will become
    it: edge/library/first_model.py); embeddings compare only between identical files."""
    for path in (model, model.with_name(BACKBONE)):
        if path.is_file():
            return file_hash(path)
    return ""


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class _HouseholdTransport(Transport):
    """The MQTT transport; a reconnection re-sends only `online` and this Pi's state, never
    the person records it sent before (newer ones from other Pis may be retained by now)."""

    def _announcement(self) -> list[Message]:
        return [self.msg(f"{self.base}/status", b"online"), *self._announce()]


class ShareOutput(Output):
    """Keeps this Pi's face library in step with the household's (docs/household.md)."""

    def __init__(self, cfg: Config) -> None:
        src = cfg.source_file
        if not cfg.mqtt.host:
            raise UserError(f"{src}: library.share is true but mqtt.host is empty: set the broker")
        if not cfg.recognize.model:
            raise UserError(f"{src}: library.share is true but recognize.model is empty")
        self.topic = cfg.library.share_topic
        check_topic_part(self.topic, "library.share_topic", src)
        self.device = cfg.device_id()
        check_topic_part(self.device, "mqtt.device_id", src)
        self.base = f"{self.topic}/devices/{self.device}"
        self.library = FaceLibrary(cfg)
        self.model = Path(cfg.recognize.model)
        self.meta_file = self.model.with_suffix(".json")
        self._model_sig = _signature(self.model)
        self.backbone = backbone_hash(self.model)
        self.transport = _HouseholdTransport(
            cfg,
            self.base,
            f"{self.device}-library",
            subscriptions=[(f"{self.topic}/people/+", 1), (f"{self.base}/status", 1)],
            on_message=self._on_message,
            announce=self._on_ready,
        )
        self._lock = threading.Lock()
        self._remote: dict[str, Person] = {}
        self._seen: dict[
            str, tuple[str, str, int]
        ] = {}  # id -> the broker's (digest, device, version)
        self._sent: dict[str, str] = {}  # id -> digest we published, until the broker echoes it
        self._said: set[str] = set()  # refusals already logged
        self._wake = threading.Event()
        self._ready = self._dirty = False
        self._stop = False
        self._last_sig: tuple | None = None
        self._thread: threading.Thread | None = None
        self.adoptions = 0
        self.share_photos = cfg.library.share_photos
        self._hashes: dict[Path, tuple] = {}

    # --- Output ------------------------------------------------------------------------------
    def start(self, labels: list[str], slugs: dict[str, str] | None = None) -> None:
        if self._thread is not None:
            return
        log.info("household: sharing the face library under %s/ as %s", self.topic, self.device)
        self.transport.start([self.transport.msg(f"{self.base}/status", b"online")])
        self._thread = threading.Thread(target=self._run, name="household", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.transport.close([self.transport.msg(f"{self.base}/status", b"offline")])

    # --- the broker (paho's network thread) ----------------------------------------------------
    def _on_ready(self) -> list[Message]:
        """Every retained record has arrived (called on each connection, under the transport's
        lock: only flags the worker)."""
        self._ready = self._dirty = True
        self._wake.set()
        return []

    def _say_once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", text)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        prefix = f"{self.topic}/people/"
        if not msg.topic.startswith(prefix) or not msg.payload:
            return
        pid = msg.topic[len(prefix) :]
        try:
            person, device, backbone = read_message(msg.payload)
        except RecordError as exc:
            self._say_once(f"bad:{msg.topic}", f"household: ignoring {msg.topic}: {exc}")
            return
        if person.id != pid:
            self._say_once(
                f"id:{msg.topic}", f"household: ignoring {msg.topic}: it is {person.id!r}"
            )
            return
        if backbone != self.backbone:
            self._say_once(
                f"backbone:{device}:{backbone}",
                f"household: refusing the people from {device}: made with another face model "
                f"(sha256 {backbone[:12]}, this Pi's {self.model.name} is {self.backbone[:12]}); "
                "every Pi of a household needs the same faces.tflite",
            )
            return
        with self._lock:
            self._seen[pid] = (person.digest(), device, person.version())
            self._sent.pop(pid, None)
            known = self._remote.get(pid)
            merged = known.merged(person) if known else person
            if known is None or merged.digest() != known.digest():
                self._remote[pid] = merged
                self._dirty = True
        self._wake.set()

    # --- the worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(POLL_S)
            self._wake.clear()
            if self._stop or not self._ready:
                continue
            sig = _signature(self.meta_file)
            if sig == self._last_sig and not self._dirty:
                continue
            self._dirty = False
            self._last_sig = sig  # a change committed during the sync is seen at the next look
            try:
                self._sync()
            except (UserError, ModelError) as exc:
                self._say_once(
                    f"sync:{exc}", f"household: cannot adopt the household's library: {exc}"
                )
            except OSError as exc:
                log.error(
                    "household: %s: %s", exc.filename or self.model.parent, exc.strerror or exc
                )

    def _sync(self) -> None:
        """Merge and adopt through the library owner, then publish what the broker lacks."""
        model_sig = _signature(self.model)
        if model_sig != self._model_sig:  # a first model made here, a new PC model
            self._model_sig = model_sig
            self.backbone = backbone_hash(self.model)
        with self._lock:
            remote = dict(self._remote)
        t0 = time.monotonic()
        before = _signature(self.meta_file)
        merged, store = self.library.adopt_household(remote)
        if _signature(self.meta_file) != before and remote:
            self.adoptions += 1
            log.info("household: in step in %.2f s", time.monotonic() - t0)
        rows = {k: store.emb[i] for i, k in enumerate(store.keys)}
        for pid in sorted(merged):
            person = merged[pid]
            digest = person.digest()
            with self._lock:
                seen = self._seen.get(pid)
                if (seen and seen[0] == digest) or self._sent.get(pid) == digest:
                    continue
                self._sent[pid] = digest
            on_disk = self._photo_files(person.name) if self.share_photos else {}
            for key in person.live():
                photo = person.photos[key]
                emb = rows.get(key) if photo.emb is None else photo.emb
                image, file = photo.image, photo.file
                if image is None and key in on_disk:
                    image, file = on_disk[key].read_bytes(), on_disk[key].name
                person.photos[key] = Photo(photo.at, photo.group, emb, image, file)
            payload = message(person, self.device, self.backbone, iso(None))
            topic = f"{self.topic}/people/{pid}"
            self.transport.enqueue([self.transport.msg(topic, payload)], bounded=False)
            had = ""
            if seen and seen[1] != self.device:
                had = f"; merged with {seen[1]}'s version {seen[2]} on the broker"
            log.info(
                "household: published %s (%s): version %d, %d photo(s), %d bytes%s",
                person.name or pid,
                "forgotten" if not person.live() else pid,
                person.version(),
                len(person.live()),
                len(payload),
                had,
            )
        self._publish_state(merged)

    def _photo_files(self, name: str | None) -> dict[str, Path]:
        """Content hash -> file of the photos in dataset/<name>/ (hashes cached by stat)."""
        folder = self.library.dataset / (name or UNKNOWN_DIR)
        out = {}
        try:
            entries = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
        except OSError:
            return {}
        for path in entries:
            sig = _signature(path)
            cached = self._hashes.get(path)
            if cached is None or cached[0] != sig:
                cached = self._hashes[path] = (sig, file_hash(path))
            out[cached[1]] = path
        return out

    def _publish_state(self, merged: dict[str, Person]) -> None:
        """`<share_topic>/devices/<device>/library`: what this Pi has adopted."""
        try:
            generation = read_meta(self.model).get("generation")
        except ModelError:
            generation = None
        state = {
            "device": self.device,
            "generation": generation,
            "backbone": self.backbone,
            "people": {
                pid: {"name": p.name, "version": p.version(), "photos": len(p.live())}
                for pid, p in sorted(merged.items())
                if p.live()
            },
            "time": iso(None),
        }
        msg = self.transport.msg(f"{self.base}/library", to_json(state))
        self.transport.enqueue([msg], bounded=False)
