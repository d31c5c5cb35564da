"""Load and validate config.yaml into one typed, frozen-by-convention object.

Every key has a default; unknown keys, wrong types, out-of-range values and missing
files raise ConfigError with one line naming the file and the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import socket
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED = "<embedded defaults>"


class ConfigError(ValueError):
    """A config problem, already phrased as one line for the user."""


def _opt(default: Any, help: str = "", **meta: Any) -> Any:
    """A field with a default and validation metadata (min, max, choices, path, exists)."""
    if isinstance(default, (list, dict)):
        return field(
            default_factory=lambda: type(default)(default), metadata={"help": help, **meta}
        )
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class HaarConfig:
    scale_factor: float = _opt(1.1, "Haar pyramid step", min=1.01, max=2.0)
    min_neighbors: int = _opt(1, "Haar votes needed; low = permissive proposals", min=0, max=50)
    min_size: int = _opt(
        24, "smallest face on the downscaled frame, px (24 = cascade window)", min=8, max=1000
    )
    profile: bool = _opt(False, "also run the profile cascade (both directions)")


@dataclass
class PhotoConfig:
    width: int = _opt(
        640, "still photos, haar/dnn: width of the main pass, px (never enlarged)", min=80, max=8192
    )
    large_width: int = _opt(
        1280,
        "small faces in large photos: two-stage looks at most this wide (tiles); haar/dnn give photos wider than `width` a pass at this width (0 = off)",
        min=0,
        max=8192,
    )
    pad: float = _opt(
        0.25,
        "border added on each side for the pass that finds a face filling the photo, fraction of its longer side (0 = off)",
        min=0.0,
        max=2.0,
    )
    pad_width: int = _opt(160, "haar/dnn: width of that padded pass, px", min=80, max=4096)
    min_face: int = _opt(
        32,
        "two-stage: smallest face looked for in a still photo, its px (no pass runs finer than this needs)",
        min=8,
        max=1000,
    )
    scale_factor: float = _opt(1.2, "haar: Haar pyramid step for still photos", min=1.01, max=2.0)
    max_proposals: int = _opt(
        64, "two-stage: most small-face proposals confirmed per photo", min=1, max=1000
    )


@dataclass
class DetectConfig:
    method: str = _opt("two-stage", "two-stage | dnn | haar", choices=("two-stage", "dnn", "haar"))
    confirmer: str = _opt(
        "res10", "DNN for dnn/two-stage: res10 | blazeface", choices=("res10", "blazeface")
    )
    downscale_width: int = _opt(320, "width of the frame Haar/DNN run on, px", min=80, max=4096)
    every_n_frames: int = _opt(
        5,
        "detect on every Nth frame once every face in view is decided (every frame while one is not), track in between",
        min=1,
        max=100,
    )
    confidence: float = _opt(0.5, "DNN score to accept a face", min=0.0, max=1.0)
    margin: float = _opt(
        0.6, "two-stage: crop margin around a proposal, fraction of its size", min=0.0, max=3.0
    )
    nms_iou: float = _opt(0.3, "overlap above which the weaker box is dropped", min=0.0, max=1.0)
    max_proposals: int = _opt(
        12, "two-stage: most Haar proposals confirmed per frame, largest first", min=1, max=200
    )
    confirm_size: int = _opt(
        128, "two-stage: res10 input side for each margin crop, px", min=32, max=600
    )
    closeup: float = _opt(
        0.3,
        "live loop, two-stage: also find faces at least this share of the frame high or cut by its edge (BlazeFace proposes, the DNN confirms); 0 = off",
        min=0.0,
        max=1.0,
    )
    haar: HaarConfig = field(default_factory=HaarConfig)
    photo: PhotoConfig = field(default_factory=PhotoConfig)
    res10_prototxt: str = _opt(
        "models/deploy.prototxt.txt", "res10 SSD network", path=True, exists=True
    )
    res10_model: str = _opt(
        "models/res10_300x300_ssd_iter_140000.caffemodel",
        "res10 SSD weights",
        path=True,
        exists=True,
    )
    blazeface_model: str = _opt(
        "models/face_detection_short_range.tflite", "BlazeFace TFLite model", path=True, exists=True
    )
    blazeface_full_model: str = _opt(
        "models/face_detection_full_range.tflite",
        "full-range BlazeFace TFLite model (small faces in still photos)",
        path=True,
        exists=True,
    )
    landmark_model: str = _opt(
        "models/face_landmark.tflite",
        "468-point landmark model (alignment)",
        path=True,
        exists=True,
    )
    threads: int = _opt(2, "CPU threads for the DNN", min=1, max=16)


@dataclass
class CameraConfig:
    name: str = _opt(
        "",
        "the camera's name in events, Home Assistant and the web app (cameras: list: required); empty = the device id",
    )
    source: str = _opt(
        "models/carphone_pristine.mp4",
        "picamera2, a device index or /dev/videoN, rtsp:// or http:// URL, or a video file",
    )
    width: int = _opt(640, "capture width, px", min=16, max=8192)
    height: int = _opt(480, "capture height, px", min=16, max=8192)
    fps: float = _opt(15.0, "capture frame rate", min=0.1, max=240.0)
    rotation: int = _opt(0, "rotate frames: 0 | 90 | 180 | 270", choices=(0, 90, 180, 270))
    hflip: bool = _opt(False, "mirror left-right")
    vflip: bool = _opt(False, "flip upside down")
    reopen_backoff_max_s: float = _opt(
        30.0, "longest wait between attempts to reopen a lost camera", min=0.1, max=3600.0
    )
    stall_timeout_s: float = _opt(5.0, "no frame for this long = camera lost", min=0.5, max=600.0)
    camera_num: int = _opt(
        0, "picamera2: which CSI camera (0, or 1 for a Pi 5's second port)", min=0, max=7
    )


@dataclass
class TrackConfig:
    iou_threshold: float = _opt(0.3, "overlap that continues a track", min=0.01, max=1.0)
    max_missed_s: float = _opt(1.0, "drop a track not seen for this long", min=0.0, max=60.0)


@dataclass
class RecognizeConfig:
    model: str = _opt(
        "models/faces.tflite",
        "int8 face model from `python -m convert train` (labels: the .json beside it); must exist when set in a file; empty = detect only, everyone unknown",
        path=True,
        exists="explicit",
    )
    threads: int = _opt(2, "TFLite interpreter threads", min=1, max=16)
    watch_s: float = _opt(
        2.0,
        "look this often for a changed model (edge enroll, a new convert train) and reload it; 0 = only on SIGHUP",
        min=0.0,
        max=3600.0,
    )
    min_face_px: int = _opt(40, "smallest face (full-res px) worth recognizing", min=8, max=4096)
    votes: int = _opt(3, "crops voted over before a name is given", min=1, max=50)
    max_crops: int = _opt(6, "crops tried per track before deciding unknown", min=1, max=100)
    recheck_s: float = _opt(5.0, "re-check a decided track this often", min=0.0, max=3600.0)
    min_probability: float = _opt(
        -1.0, "override the model's probability threshold (-1: use the model's)", min=-1.0, max=1.0
    )
    max_distance: float = _opt(
        -1.0,
        "override the model's cosine-distance threshold (-1: use the model's)",
        min=-1.0,
        max=2.0,
    )


@dataclass
class DecideConfig:
    away_s: float = _opt(5.0, "a person has left after this long unseen", min=0.0, max=86400.0)


@dataclass
class TlsConfig:
    ca_file: str = _opt("", "CA certificate; set to enable TLS", path=True, exists=True)
    certfile: str = _opt("", "client certificate (optional)", path=True, exists=True)
    keyfile: str = _opt("", "client key (optional)", path=True, exists=True)
    insecure: bool = _opt(False, "skip the server hostname check (only if you must)")


@dataclass
class MqttConfig:
    host: str = _opt("", "broker host; empty = print events to stdout")
    port: int = _opt(1883, "broker port", min=1, max=65535)
    username: str = _opt("", "broker user")
    password_env: str = _opt("EDGE_MQTT_PASSWORD", "environment variable holding the password")
    password_file: str = _opt(
        "", "file holding the password (instead of the variable)", path=True, exists=True
    )
    topic_prefix: str = _opt("edge", "first part of every topic")
    device_id: str = _opt("", "second part of every topic; empty = hostname")
    discovery: bool = _opt(True, "publish Home Assistant discovery")
    discovery_prefix: str = _opt("homeassistant", "Home Assistant discovery prefix")
    qos: int = _opt(1, "QoS for events and states", choices=(0, 1, 2))
    keepalive_s: int = _opt(30, "MQTT keepalive", min=5, max=3600)
    queue_size: int = _opt(
        1000,
        "events kept while the broker is down; beyond, the oldest are dropped",
        min=1,
        max=1_000_000,
    )
    reconnect_max_s: int = _opt(
        30, "longest wait between attempts to reach the broker, s", min=1, max=3600
    )
    snapshot: bool = _opt(True, "publish a JPEG of the last face")
    tracker_away_s: float = _opt(
        600.0,
        "per-person device_tracker for Home Assistant's person: not_home this long after they left the camera (0 = no trackers)",
        min=0.0,
        max=604800.0,
    )
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass
class EnrollConfig:
    dataset: str = _opt(
        "dataset",
        "`edge enroll` keeps each person's photos here (dataset/<Name>/), so that `convert train` on a PC includes them",
        path=True,
    )


@dataclass
class LibraryConfig:
    trash_days: float = _opt(
        30.0,
        "forgotten people's and deleted photos stay in dataset/.trash/ this many days (0 = delete at once)",
        min=0.0,
        max=3650.0,
    )
    guard_distance: float = _opt(
        0.55,
        "a photo this far (cosine) from the person's own photos is refused as someone else's (--force adds it)",
        min=0.1,
        max=2.0,
    )
    share: bool = _opt(
        False,
        "share the face library with the household's other Pis through the MQTT broker (needs mqtt.host; docs/household.md)",
    )
    share_topic: str = _opt(
        "edge/household",
        "the household's topic: people under <share_topic>/people/, each Pi under <share_topic>/devices/",
    )
    share_photos: bool = _opt(
        False,
        "with share: also send the enrolment photos, kept in dataset/<name>/ on every Pi (records grow by each photo's size)",
    )


@dataclass
class UnknownFacesConfig:
    enabled: bool = _opt(True, "save the best crop of each unknown visitor")
    dir: str = _opt("unknown_faces", "where unknown crops go", path=True)
    max_files: int = _opt(
        500, "keep at most this many crops (oldest removed)", min=1, max=10_000_000
    )
    max_mb: float = _opt(200.0, "keep at most this many megabytes", min=0.1, max=1_000_000.0)
    save_known: bool = _opt(False, "also save crops of recognized people")
    crops_per_visit: int = _opt(
        4,
        "keep up to this many different crops of each unknown visit (enough to name someone seen once)",
        min=1,
        max=50,
    )


@dataclass
class HistoryConfig:
    enabled: bool = _opt(
        True, "keep every event with its reasons and face crop on disk (Events page, export)"
    )
    path: str = _opt("history/events.db", "the SQLite file (0600; its folder 0700)", path=True)
    keep_days: float = _opt(
        30.0, "events older than this many days are removed", min=0.01, max=36500.0
    )
    max_mb: float = _opt(
        256.0, "the oldest events are removed beyond this many megabytes", min=1.0, max=1_000_000.0
    )
    full_frame: bool = _opt(
        False, "also keep the whole frame of each event (about 5 times the disk)"
    )


@dataclass
class PreviewConfig:
    mjpeg_port: int = _opt(
        0, "serve the annotated stream as MJPEG on this port (0 = off)", min=0, max=65535
    )
    mjpeg_bind: str = _opt("127.0.0.1", "address for the MJPEG server (0.0.0.0 for the LAN)")


@dataclass
class WebConfig:
    port: int = _opt(
        0, "serve the face library web app on this port while edge runs (0 = off)", min=0, max=65535
    )
    bind: str = _opt(
        "127.0.0.1",
        "address for the web app; beyond loopback (0.0.0.0 for the LAN) a password is required",
    )
    password_env: str = _opt("EDGE_WEB_PASSWORD", "environment variable holding the web password")
    password_file: str = _opt(
        "", "file holding the web password (instead of the variable)", path=True, exists=True
    )
    url: str = _opt(
        "", "the page's address for Home Assistant's device link; empty = http://HOSTNAME:PORT/"
    )
    max_upload_mb: float = _opt(15.0, "largest photo upload, MB", min=0.1, max=200.0)
    max_clients: int = _opt(
        16,
        "requests handled at once (live streams included); more are answered 503",
        min=2,
        max=1000,
    )
    timeout_s: float = _opt(
        15.0, "a client that sends or reads nothing for this long is dropped", min=1.0, max=600.0
    )
    header_timeout_s: float = _opt(
        10.0, "a request's header must arrive whole within this many seconds", min=1.0, max=600.0
    )
    max_per_client: int = _opt(
        8, "connections from one address still sending their request, at most", min=1, max=1000
    )
    trusted_proxies: str = _opt(
        "",
        "reverse proxies' addresses or networks, comma-separated: their X-Forwarded-For names the client and X-Forwarded-Host the site",
    )


@dataclass
class CameraSpec:
    """One camera of the `cameras:` list: its capture settings, and the detect and recognize
    settings with its own overrides over the top-level ones."""

    camera: CameraConfig
    detect: DetectConfig
    recognize: RecognizeConfig


@dataclass
class Config:
    log_level: str = _opt(
        "INFO", "DEBUG | INFO | WARNING | ERROR", choices=("DEBUG", "INFO", "WARNING", "ERROR")
    )
    stats_interval_s: float = _opt(
        60.0, "log (and publish over MQTT) stats this often", min=1.0, max=86400.0
    )
    camera: CameraConfig = field(default_factory=CameraConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    recognize: RecognizeConfig = field(default_factory=RecognizeConfig)
    decide: DecideConfig = field(default_factory=DecideConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    unknown_faces: UnknownFacesConfig = field(default_factory=UnknownFacesConfig)
    enroll: EnrollConfig = field(default_factory=EnrollConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    preview: PreviewConfig = field(default_factory=PreviewConfig)
    web: WebConfig = field(default_factory=WebConfig)
    # Built from the `cameras:` list (edge/config.py: _build_cameras); empty = the one `camera:`.
    cameras: list[CameraSpec] = field(default_factory=list, metadata={"internal": True})
    # Where the values came from; not config keys.
    source_file: str = field(default=EMBEDDED, metadata={"internal": True})
    explicit: frozenset[str] = field(default_factory=frozenset, metadata={"internal": True})

    def mqtt_password(self) -> str:
        """The broker password from the configured file or environment variable ('' if none)."""
        return self._secret("mqtt", self.mqtt.password_file, self.mqtt.password_env)

    def web_password(self) -> str:
        """The web app's password from the configured file or environment variable ('' if none)."""
        return self._secret("web", self.web.password_file, self.web.password_env)

    def _secret(self, section: str, password_file: str, password_env: str) -> str:
        """A password from `password_file` if set, else the variable `password_env`."""
        if password_file:
            try:
                return Path(password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"{self.source_file}: {section}.password_file: cannot read {password_file}: {exc.strerror}"
                ) from None
        return os.environ.get(password_env, "") if password_env else ""

    def web_url(self) -> str:
        """The web app's address for Home Assistant ('' when it is off)."""
        if not self.web.port:
            return ""
        if self.web.url:
            return self.web.url
        host = self.web.bind
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.web.port}/"

    def device_id(self) -> str:
        """The MQTT device id: configured, or the hostname."""
        return self.mqtt.device_id or socket.gethostname()

    def camera_name(self) -> str:
        """This config's camera's name in events: camera.name, or the device id."""
        return self.camera.name or self.device_id()


def _type_name(tp: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check one scalar against its declared type, allowing int where float is expected."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # camera.source: 0, device_id: 42
        if value is None:
            return ""
    shown = "empty" if value is None else repr(value)
    raise ConfigError(f"{where} must be {_type_name(tp)}, got {shown}")


def _check(value: Any, meta: dict, where: str) -> None:
    if "choices" in meta and value not in meta["choices"]:
        choices = ", ".join(str(c) for c in meta["choices"])
        raise ConfigError(f"{where} must be one of {choices}, got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{where} must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{where} must be <= {meta['max']}, got {value!r}")


def _build(cls: type, data: Any, prefix: str, explicit: set[str]) -> Any:
    where = prefix.rstrip(".") or "top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{prefix}{key}: unknown key (known here: {known})")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = hints[name]
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], key + ".", explicit)
            continue
        if isinstance(tp, types.GenericAlias):
            raise ConfigError(f"{key}: unsupported type")
        value = _coerce(data[name], tp, key)
        _check(value, f.metadata, key)
        kwargs[name] = value
        explicit.add(key)
    return cls(**kwargs)


def _resolve_paths(
    obj: Any, base: Path, prefix: str, explicit: frozenset[str], errors_file: str
) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _resolve_paths(value, base, key + ".", explicit, errors_file)
            continue
        if not f.metadata.get("path") or not value:
            continue
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = (base if key in explicit else PROJECT_ROOT) / path
        setattr(obj, f.name, str(path))
        exists = f.metadata.get("exists")
        if exists == "explicit" and key not in explicit:
            continue
        if exists and not path.exists():
            hint = ""
            if key == "recognize.model":
                if path.with_name("backbone.tflite").is_file():
                    continue  # the first enrolment makes it (edge/library/first_model.py)
                hint = " (no model yet? `python -m convert backbone` makes backbone.tflite, from which the first person enrolled makes it)"
            raise ConfigError(f"{errors_file}: {key}: file not found: {path}{hint}")


def _resolve_source(
    cam: CameraConfig, base: Path, errors_file: str, key: str = "camera.source"
) -> None:
    """Resolve a relative video-file source against `base`."""
    src = cam.source.strip()
    if not src:
        raise ConfigError(f"{errors_file}: {key} must not be empty")
    if src == "picamera2" or src.isdigit() or "://" in src or src.startswith("/dev/"):
        cam.source = src
        return
    path = Path(os.path.expanduser(src))
    if not path.is_absolute():
        path = base / path
    if not path.exists():
        raise ConfigError(f"{errors_file}: {key}: no such file or device: {path}")
    cam.source = str(path)


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Load `path` (or the embedded defaults when None), apply dotted overrides, validate.

    Relative paths set in the file resolve against its folder; defaults against the project.
    """
    explicit: set[str] = set()
    if path is None:
        name, base, data = EMBEDDED, PROJECT_ROOT, {}
    else:
        p = Path(path)
        name, base = str(p), p.resolve().parent
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{p}: cannot read config: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{p}: not valid YAML{at}: {problem}") from None
        if data is None:
            data = {}
    cameras = data.pop("cameras", None) if isinstance(data, dict) else None
    overrides = _source_override(cameras, dict(overrides or {}), name)
    for dotted, value in (overrides or {}).items():
        if not isinstance(data, dict):
            break
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    try:
        cfg = _build(Config, data, "", explicit)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    cfg.source_file = name
    cfg.explicit = frozenset(explicit)
    _resolve_paths(cfg, base, "", cfg.explicit, name)
    _resolve_source(cfg.camera, base if "camera.source" in explicit else PROJECT_ROOT, name)
    cfg.cameras = _build_cameras(cameras, data.get("camera"), cfg, base, name)
    return cfg


# --- the `cameras:` list -----------------------------------------------------------------

CAMERA_RECOGNIZE_KEYS = ("min_face_px", "votes", "max_crops", "recheck_s")  # the rest: one model
MODEL_FILES = (
    "res10_prototxt",
    "res10_model",
    "blazeface_model",
    "blazeface_full_model",
    "landmark_model",
)


def camera_configs(cfg: Config) -> list[Config]:
    """One Config per camera: the `cameras:` list's, or `cfg` itself for the one `camera:`."""
    return [
        dataclasses.replace(cfg, camera=s.camera, detect=s.detect, recognize=s.recognize)
        for s in cfg.cameras
    ] or [cfg]


def _source_override(cameras: Any, overrides: dict, file: str) -> dict:
    """--source with a `cameras:` list: the one camera's source; refused for several."""
    if cameras is None or "camera.source" not in overrides:
        return overrides
    if not isinstance(cameras, list) or len(cameras) != 1 or not isinstance(cameras[0], dict):
        raise ConfigError(
            f"{file}: --source: the config lists several cameras; set each one's source under cameras:"
        )
    cameras[0] = {**cameras[0], "source": overrides.pop("camera.source")}
    return overrides


def _build_cameras(
    entries: Any, shared: Any, cfg: Config, base: Path, file: str
) -> list[CameraSpec]:
    """The `cameras:` list: each entry's keys over the top-level `camera:` ones, its
    `detect:`/`recognize:` over the top-level sections; names unique, sources there."""
    if entries is None:
        return []
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{file}: cameras must be a list of cameras (name, source, ...)")
    specs: list[CameraSpec] = []
    for i, entry in enumerate(entries):
        where = f"cameras[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{file}: {where} must be a mapping (name, source, ...)")
        entry = dict(entry)
        detect, recognize = entry.pop("detect", None), entry.pop("recognize", None)
        for key in ("name", "source"):
            if not str(entry.get(key) or "").strip():
                raise ConfigError(f"{file}: {where}.{key} is required")
        try:
            cam = _build(CameraConfig, {**(shared or {}), **entry}, f"{where}.", set())
        except ConfigError as exc:
            raise ConfigError(f"{file}: {exc}") from None
        if cam.name in [s.camera.name for s in specs]:
            raise ConfigError(f"{file}: {where}.name: {cam.name!r} names two cameras")
        _resolve_source(cam, base, file, f"{where}.source")
        specs.append(
            CameraSpec(
                cam,
                _override(cfg.detect, detect, f"{where}.detect", file, MODEL_FILES, None),
                _override(cfg.recognize, recognize, f"{where}.recognize", file, (), CAMERA_RECOGNIZE_KEYS),
            )
        )  # fmt: skip
    return specs


def _override(
    obj: Any, data: Any, prefix: str, file: str, fixed: tuple, allowed: tuple | None
) -> Any:
    """A copy of the section `obj` with the keys set in `data` (validated like the file's);
    keys in `fixed` or outside `allowed` are the same for every camera."""
    explicit: set[str] = set()
    try:
        built = _build(type(obj), data, prefix + ".", explicit)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    out = copy.deepcopy(obj)
    section = prefix.rsplit(".", 1)[-1]
    for key in sorted(explicit):
        path = key[len(prefix) + 1 :].split(".")
        if path[0] in fixed or (allowed is not None and path[0] not in allowed):
            raise ConfigError(
                f"{file}: {key}: one for every camera: set it under the top-level {section}:"
            )
        node, value = out, built
        for part in path[:-1]:
            node, value = getattr(node, part), getattr(value, part)
        setattr(node, path[-1], getattr(value, path[-1]))
    return out


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every key: used to document and test config.yaml."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, f"{prefix}{f.name}."))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f"{prefix}{f.name}", default, f.metadata.get("help", "")))
    return rows
