"""The device configuration: one pydantic schema, read from YAML.

Unknown keys are refused at every level, every field carries a description, and
the file carries a ``version`` that is migrated forward (never silently
misread). ``load_config`` reports EVERY problem at once, each with the YAML line
it came from, e.g. ``pi5.yaml:12: camera.width: Input should be a valid integer``.
Relative paths are resolved against the folder of the config file (``~`` is
expanded), so a profile can say ``packs: {dir: ../packs}``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from device.colour.card import CardKind
from device.core.cliutil import UserError
from device.core.errors import validation_problems
from device.core.vocab import CONFIG_CROP_MODES, CropMode  # CropMode: one enum for config and store

log = logging.getLogger(__name__)

#: The config schema version this software reads.
CONFIG_VERSION = 1

#: Migrators: ``MIGRATIONS[n]`` turns a version-n mapping into a version-(n+1) mapping.
#: When the schema changes, bump CONFIG_VERSION and add the step here.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

DEFAULT_CONFIG_NAME = "default_config.yaml"


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; ``problems`` lists every error."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class CameraSource(str, Enum):
    SYNTHETIC = "synthetic"
    FOLDER = "folder"
    PICAMERA2 = "picamera2"
    OPENCV = "opencv"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def _resolve_path(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    value = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


#: A path in the config: ``~`` expanded, relative paths resolved against the config's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CameraConfig(_Section):
    source: CameraSource = Field(
        default=CameraSource.SYNTHETIC,
        description="Where frames come from: synthetic, folder, picamera2 or opencv")
    folder: ConfigPath | None = Field(
        default=None, description="Image folder the folder source cycles through")
    device: str = Field(
        default="0",
        description="opencv source: a camera index like '0' (USB), or a GStreamer pipeline "
                    "string (Jetson CSI camera)")
    width: int = Field(default=1280, ge=16, le=10000, description="Capture width in pixels")
    height: int = Field(default=960, ge=16, le=10000, description="Capture height in pixels")
    settle_seconds: float = Field(
        default=1.0, ge=0, le=30,
        description="Seconds auto-exposure and white balance settle before they are locked")
    retry_seconds: float = Field(
        default=2.0, gt=0, le=600,
        description="Seconds to wait before reopening a camera that failed")
    seed: int = Field(default=0, description="Random seed of the synthetic source")
    scene_seconds: float = Field(
        default=0.0, ge=0, le=3600,
        description="synthetic and folder sources: seconds each generated frame or photo stays "
                    "in front of the camera, so the live preview can be aimed; 0: a new one "
                    "at every read")
    preview_width: int = Field(
        default=640, ge=16, le=4096,
        description="Live preview width; picamera2 streams it from its low-resolution output")
    preview_height: int = Field(default=480, ge=16, le=4096, description="Live preview height")

    @model_validator(mode="after")
    def _folder_needed(self) -> CameraConfig:
        if self.source is CameraSource.FOLDER and self.folder is None:
            raise ValueError("camera.source is folder but camera.folder is not set")
        return self


class CropConfig(_Section):
    mode: CropMode = Field(default=CropMode.GUIDE, description="Crop mode: guide, auto or box")

    @field_validator("mode")
    @classmethod
    def _chosen_mode(cls, mode: CropMode) -> CropMode:
        if mode not in CONFIG_CROP_MODES:
            raise ValueError(f"{mode.value!r} is recorded by the device, not chosen: use "
                             + ", ".join(m.value for m in CONFIG_CROP_MODES))
        return mode
    guide_fraction: float = Field(
        default=0.5, gt=0.05, le=1.0,
        description="Side of the guide square as a fraction of the frame's shorter side")
    auto_min_score: float = Field(
        default=0.15, ge=0,
        description="auto mode falls back to the guide square when the best region's "
                    "lesion score is below this")


class QualityConfig(_Section):
    min_brightness: float = Field(
        default=40, ge=0, le=255, description="Lowest mean brightness (0-255) accepted")
    max_brightness: float = Field(
        default=225, ge=0, le=255, description="Highest mean brightness (0-255) accepted")
    min_sharpness: float = Field(
        default=5, ge=0,
        description="Lowest variance of the Laplacian accepted (blur check), measured on a "
                    "grey copy scaled to 512 px on its shorter side")
    min_size: int = Field(
        default=64, ge=1, description="Smallest accepted shorter side of the image, in pixels")
    min_skin_fraction: float = Field(
        default=0.25, ge=0, le=1, description="Smallest share of pixels that must look like skin")
    max_skin_texture: float = Field(
        default=12.0, ge=0,
        description="Largest fine-detail energy of the skin-coloured pixels (per cent of their "
                    "brightness, measured at 192 px) accepted: fur, food and foliage are "
                    "rougher than skin")

    @model_validator(mode="after")
    def _order(self) -> QualityConfig:
        if self.min_brightness >= self.max_brightness:
            raise ValueError("quality.min_brightness must be below quality.max_brightness")
        return self


class GradingConfig(_Section):
    threads: int = Field(default=2, ge=1, le=64, description="Interpreter threads per model")
    review_min_top_prob: float = Field(
        default=0.55, ge=0, le=1,
        description="A sign is flagged for review when its top probability is below this")
    review_max_far_mass: float = Field(
        default=0.2, ge=0, le=1,
        description="A sign is flagged for review when this much probability or more lies on "
                    "grades two or more steps away from the top grade")


class ColourConfig(_Section):
    correct: bool = Field(
        default=True, description="Look for a colour reference card in each frame and, when "
                                  "one is found, correct the colours before cropping and grading")
    require_card: bool = Field(
        default=False, description="The capture hints say 'colour card not in view' until a "
                                   "card is found in the preview")
    cards: list[CardKind] = Field(
        default_factory=lambda: [CardKind.PRINTED, CardKind.CHART],
        description="Which cards to look for, in order: 'printed' (the project's card with "
                    "ArUco markers) and 'chart' (the commercial 24-patch chart)")
    max_delta_e: float = Field(
        default=6.0, gt=0, le=50,
        description="Largest mean CIEDE2000 residual of the card's patches after correction "
                    "that is trusted; above it the scan is graded uncorrected, with a note")


class PacksConfig(_Section):
    dir: ConfigPath = Field(
        default=Path("~/atopiscan/packs"),
        description="Folder holding installed model packs (store/, current, previous)")
    public_key: ConfigPath | None = Field(
        default=None, description="Ed25519 public key; when set, packs must be signed with it")


class StorageConfig(_Section):
    data_dir: ConfigPath = Field(
        default=Path("~/atopiscan/data"), description="Folder of the scan database and images")
    keep_images: bool = Field(default=True, description="Keep the scanned images on disk")
    keep_frames: bool = Field(
        default=True, description="Also keep each scan's full camera frame (with keep_images); "
        "python -m device export-dataset --full-frames exports them")
    blur_faces: bool = Field(
        default=False, description="Blur the faces detected in a kept full frame, outside the "
        "crop box (the graded crop is kept exactly as graded)")
    retention_days: int = Field(
        default=365, ge=1, description="Days scanned images are kept before deletion")


class MonitorConfig(_Section):
    window: int = Field(
        default=50, ge=1, description="Field-agreement monitor: how many recent reviewed scans "
        "it counts staff changes over")
    warn_rate: float = Field(
        default=0.3, gt=0, le=1, description="Warn on the status page when staff changed a "
        "sign's grade on more than this share of scans")
    min_scans: int = Field(
        default=20, ge=1, description="Warn only once at least this many reviewed scans count")


class TlsMode(str, Enum):
    AUTO = "auto"      # HTTPS when the dashboard listens beyond loopback; loopback stays HTTP
    ALWAYS = "always"  # HTTPS on loopback too


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TlsConfig(_Section):
    mode: TlsMode = Field(
        default=TlsMode.AUTO,
        description="auto: serve HTTPS whenever web.host is not a loopback address (loopback "
                    "stays plain HTTP); always: HTTPS on loopback too")
    cert: ConfigPath | None = Field(
        default=None,
        description="PEM certificate (with its chain) to serve; none: a self-signed one is "
                    "made at first start in <storage.data_dir>/tls/ and its fingerprint shown")
    key: ConfigPath | None = Field(
        default=None, description="PEM private key of tls.cert (unencrypted); needed with cert")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both tls.cert and tls.key, or neither (then self-signed)")
        return self


#: Worker threads kept free for pages and /healthz however many live previews are open.
PAGE_THREADS_RESERVED = 4


class ServerLimits(_Section):
    """How much of the dashboard's server one client, one login or all of them may hold.
    The defaults fit a Pi 4 (about 2 MB of memory per thread, 1 per open connection)."""

    threads: int = Field(
        default=16, ge=PAGE_THREADS_RESERVED + 1, le=64,
        description="Worker threads answering requests; each open live-preview stream "
                    "(/scan/stream.mjpg, /scan/hints) holds one for as long as it is open")
    connection_limit: int = Field(
        default=100, ge=8, le=1000,
        description="Connections the server keeps open at once (idle keep-alive ones "
                    "included); beyond it new ones wait in the kernel's backlog")
    idle_timeout_s: float = Field(
        default=30, gt=0, le=600,
        description="Seconds an idle keep-alive connection (no request in progress) stays open")
    max_streams: int = Field(
        default=8, ge=1,
        description="Live-preview streams open at once over all logins; one more is answered "
                    "503. At most threads - 4, so pages always have threads")
    max_streams_per_session: int = Field(
        default=4, ge=1,
        description="Live-preview streams one login may hold (a scan page opens two: the "
                    "picture and its hints); one more is answered 503")
    max_connections_per_client: int = Field(
        default=32, ge=1,
        description="HTTPS only: connections one client address may hold open (a browser "
                    "uses about 6 plus its streams); more are closed at once")
    handshake_timeout_s: float = Field(
        default=10, gt=0, le=120,
        description="HTTPS only: seconds a new connection has to start and finish its TLS "
                    "handshake")
    header_timeout_s: float = Field(
        default=10, gt=0, le=120,
        description="HTTPS only: seconds a client has, after its handshake, to send the "
                    "whole header of its first request (a byte-drip client is dropped)")

    @model_validator(mode="after")
    def _fits(self) -> ServerLimits:
        if self.max_streams > self.threads - PAGE_THREADS_RESERVED:
            raise ValueError(
                f"max_streams ({self.max_streams}) must leave {PAGE_THREADS_RESERVED} of the "
                f"{self.threads} threads for pages: lower it to {self.threads - PAGE_THREADS_RESERVED}"
                " or raise threads")
        if self.max_streams_per_session > self.max_streams:
            raise ValueError(f"max_streams_per_session ({self.max_streams_per_session}) is more "
                             f"than max_streams ({self.max_streams})")
        if self.max_connections_per_client > self.connection_limit:
            raise ValueError(f"max_connections_per_client ({self.max_connections_per_client}) is "
                             f"more than connection_limit ({self.connection_limit})")
        return self


class WebConfig(_Section):
    host: str = Field(default="127.0.0.1", description="Address the dashboard listens on")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the dashboard listens on")
    session_minutes: int = Field(
        default=30, ge=1, description="Minutes of inactivity before a login expires")
    max_upload_mb: float = Field(
        default=20, gt=0, description="Largest image upload accepted, in megabytes")
    tls: TlsConfig = Field(default_factory=TlsConfig,
                           description="HTTPS for the dashboard (required beyond loopback)")
    limits: ServerLimits = Field(
        default_factory=ServerLimits,
        description="Threads, connections, live-preview streams and timeouts of the server "
                    "(device/web/API.md, 'Server limits')")

    @property
    def uses_tls(self) -> bool:
        return self.tls.mode is TlsMode.ALWAYS or not is_loopback(self.host)


class LoggingConfig(_Section):
    level: LogLevel = Field(default=LogLevel.INFO, description="Log level")
    file: ConfigPath | None = Field(default=None, description="Log file; none logs to stderr")


class DeviceConfig(_Section):
    version: int = Field(description="Config schema version; this software reads version 1")
    device_name: str = Field(
        default="atopiscan", min_length=1, description="Name shown on the dashboard")
    camera: CameraConfig = Field(default_factory=CameraConfig, description="Camera source")
    crop: CropConfig = Field(default_factory=CropConfig, description="How the lesion is cropped")
    quality: QualityConfig = Field(
        default_factory=QualityConfig, description="Image quality thresholds")
    grading: GradingConfig = Field(
        default_factory=GradingConfig, description="Interpreter and review settings")
    colour: ColourConfig = Field(
        default_factory=ColourConfig, description="Colour correction from a reference card")
    packs: PacksConfig = Field(default_factory=PacksConfig, description="Model packs")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Scan storage")
    web: WebConfig = Field(default_factory=WebConfig, description="The dashboard")
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig, description="How often staff change the models' grades")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging")
    #: File this config was read from (set by load_config), None when built in code.
    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    def summary(self) -> str:
        cam = self.camera
        where = {CameraSource.FOLDER: f" {cam.folder}", CameraSource.OPENCV: f" {cam.device}"}
        return "\n".join([
            f"device {self.device_name} (config version {self.version})",
            f"camera: {cam.source.value}{where.get(cam.source, '')} {cam.width}x{cam.height}",
            f"crop: {self.crop.mode.value} (guide {self.crop.guide_fraction:g})",
            f"grading: {self.grading.threads} threads, review below "
            f"{self.grading.review_min_top_prob:g}",
            f"packs: {self.packs.dir} (signature "
            f"{'required: ' + str(self.packs.public_key) if self.packs.public_key else 'optional'})",
            f"storage: {self.storage.data_dir} (keep images: {self.storage.keep_images}, "
            f"{self.storage.retention_days} days)",
            f"web: {'https' if self.web.uses_tls else 'http'}://{self.web.host}:{self.web.port}",
        ])


def migrate(data: dict[str, Any], *, origin: str = "config") -> dict[str, Any]:
    """Bring a raw config mapping up to CONFIG_VERSION through the MIGRATIONS table."""
    version = data.get("version")
    if version is None:
        raise ConfigError([f"{origin}: version: missing; add 'version: {CONFIG_VERSION}' "
                           "at the top of the file"])
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError([f"{origin}: version: {version!r} is not a config version "
                           f"(this software reads version {CONFIG_VERSION})"])
    if version > CONFIG_VERSION:
        raise ConfigError([f"{origin}: version: {version} is newer than this software reads "
                           f"(version {CONFIG_VERSION}); update the device software"])
    while version < CONFIG_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigError([f"{origin}: version: no migration from version {version}"])
        data = step(dict(data))
        version += 1
        data["version"] = version
        log.info("%s: migrated config to version %d", origin, version)
    return data


def _line_index(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    """Map every key path (tuple of keys/indexes) to the 1-based line its key is on."""
    if out is None:
        out = {(): node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, key_node.value)
            out[sub] = key_node.start_mark.line + 1
            _line_index(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _line_index(item, (*path, i), out)
    return out


def _line_for(loc: tuple, lines: dict) -> int | None:
    loc = tuple(str(p) if not isinstance(p, int) else p for p in loc)
    while loc not in lines and loc:
        loc = loc[:-1]
    return lines.get(loc)


UNKNOWN_KEY = "unknown key (misspelt? the known keys are in device/default_config.yaml and the README)"


def validate_mapping(data: Any, *, base_dir: Path | None, origin: str,
                     lines: dict | None = None) -> DeviceConfig:
    """Validate an already-parsed mapping; errors carry line numbers when ``lines`` is given."""
    if not isinstance(data, dict):
        raise ConfigError([f"{origin}: the file must be a YAML mapping (key: value lines)"])
    data = migrate(data, origin=origin)
    try:
        return DeviceConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = []
        for problem in validation_problems(exc, unknown_key=UNKNOWN_KEY):
            line = _line_for(problem.loc, lines or {})
            problems.append(f"{origin}:{line}: {problem}" if line else f"{origin}: {problem}")
        raise ConfigError(problems) from exc


def load_config(path: Path | str) -> DeviceConfig:
    """Read and validate a YAML config file; raise ConfigError listing every problem."""
    path = Path(path)
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: config file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc})"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark else origin
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML: {problem}"]) from exc
    if node is None:
        raise ConfigError([f"{origin}: the file is empty; start with 'version: {CONFIG_VERSION}'"])
    config = validate_mapping(data, base_dir=path.resolve().parent, origin=origin,
                              lines=_line_index(node))
    config._source_path = path.resolve()
    return config


def default_config_path() -> Path:
    """The packaged default config (used when ``--config`` is omitted)."""
    return Path(str(resources.files("device").joinpath(DEFAULT_CONFIG_NAME)))


def load_default_config() -> DeviceConfig:
    return load_config(default_config_path())


def load_config_arg(path: Path | None) -> DeviceConfig:
    """The config a ``--config`` option names (the packaged default when none), with
    every problem on its own line as a UserError."""
    try:
        return load_config(path) if path else load_default_config()
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
