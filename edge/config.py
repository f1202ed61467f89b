"""The daemon's configuration: one TOML file, strictly validated, every problem with its key path.

Each section is a pydantic model with ``extra="forbid"`` so a typo is an error, not a silently
ignored key. Validators do no I/O: whether a path exists or a camera opens is the runtime's
business (and gives a fault LED there, not a config error). An empty file -- or no file -- is a
valid config: the defaults run the built-in demo bundle on USB camera 0.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge.anomaly_config import AnomalyConfig
from edge.config_checks import (  # noqa: F401 - PathText and path_text: part of the config API
    PathText,
    add_pin_problems,
    camera_index,
    path_text,
    pin_conflicts,
    suggestion,
)
from edge.console.config import ConsoleConfig
from edge.controls import ControlsConfig
from edge.errors import ConfigError
from edge.mqtt.config import MqttConfig
from edge.section import Section

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the edge extra brings tomli there)
    import tomli as tomllib

# BCM numbers of the 40-pin header's GPIOs: 0-27 on every Pi with that header (28+ are not wired).
Pin = Annotated[int, Field(ge=0, le=27)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
MAX_USB_INDEX = 255  # /dev/video0 .. /dev/video255 (V4L2's minor range)




class SourceConfig(Section):
    """Where frames come from."""

    kind: Literal["auto", "usb", "picamera2", "stream", "file", "folder"] = "auto"
    # USB index ("0") or /dev/videoN, rtsp:// or http(s):// URL, video file, image folder.
    uri: Annotated[str, BeforeValidator(camera_index)] = Field(default="0", min_length=1)
    loop: bool = False  # video file / image folder: start again at the end
    width: Annotated[int, Field(ge=16, le=8192)] | None = None  # camera request, if set
    height: Annotated[int, Field(ge=16, le=8192)] | None = None
    fps: Annotated[float, Field(gt=0, le=240)] | None = None
    realtime: bool = False  # video file: play at its own frame rate (not as fast as it decodes)
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # What the station inspects (edge/view.py): [x, y, w, h] in pixels (ints) or fractions of
    # the frame (floats), then flips, then a clockwise rotation; all before the resize.
    roi: Annotated[list[int | float], Field(min_length=4, max_length=4)] | None = None
    rotate: Literal[0, 90, 180, 270] = 0
    hflip: bool = False
    vflip: bool = False
    # USB cameras: "auto" asks for MJPG and decodes only what the model needs, else YUYV.
    fourcc: Literal["auto", "MJPG", "YUYV"] = "auto"
    camera_num: Annotated[int, Field(ge=0, le=7)] = 0  # picamera2: which camera port
    controls: ControlsConfig = ControlsConfig()

    @field_validator("roi")
    @classmethod
    def _roi_valid(cls, value: list | None) -> list | None:
        if value is None:
            return value
        x, y, w, h = value
        if any(isinstance(v, float) for v in value):
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
                raise PydanticCustomError("roi", "fractions: 0 <= x, y < 1 and 0 < w, h <= 1")
            if x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
                raise PydanticCustomError("roi", "fractions: x + w and y + h must be <= 1")
        elif x < 0 or y < 0 or w < 8 or h < 8:
            raise PydanticCustomError("roi", "pixels: x, y >= 0 and w, h >= 8")
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise PydanticCustomError("order", "must be >= reconnect_min_s ({low})", {"low": low})
        return value

    @field_validator("uri")
    @classmethod
    def _usb_index_in_range(cls, uri: str, info) -> str:
        """A camera index OpenCV cannot take would kill the capture thread, not fail an open."""
        usb = info.data.get("kind") in ("auto", "usb") and uri.isdigit()
        if usb and (not uri.isascii() or len(uri) > 3 or int(uri) > MAX_USB_INDEX):
            raise PydanticCustomError(
                "usb_index",
                "camera index {uri} is not in 0-{top}",
                {"uri": uri if len(uri) <= 12 else uri[:12] + "...", "top": MAX_USB_INDEX},
            )
        return uri

    def resolved(self) -> SourceKind:
        """What ``kind`` (``auto`` judged from ``uri``) means; the one place that decides it.

        Looks at the disk only to tell a folder from a file, and only for an ``auto`` path.
        """
        kind = self.kind
        if kind == "auto":
            uri = self.uri
            if uri.isdigit() or uri.startswith("/dev/"):  # /dev/videoN, /dev/v4l/by-id/...
                kind = "usb"
            elif uri == "picamera2":
                kind = "picamera2"
            elif "://" in uri:
                kind = "stream"
            else:
                kind = "folder" if Path(uri).is_dir() else "file"
        return SourceKind(kind, live=kind in _LIVE_KINDS, is_path=kind in ("file", "folder"))


_LIVE_KINDS = ("usb", "picamera2", "stream")


@dataclass(frozen=True)
class SourceKind:
    """A resolved source: its kind, whether it is live (a camera or stream: drop old frames,
    never ends) and whether ``uri`` is a path (a file or folder: relative to the config file)."""

    name: str  # usb, picamera2, stream, file or folder
    live: bool
    is_path: bool


class ModelConfig(Section):
    """Which bundle to run and how; thresholds here override the bundle's."""

    bundle: PathText | None = None  # None: the built-in demo bundle
    backend: Literal["auto", "litert", "tflite_runtime"] = "auto"
    num_threads: Annotated[int, Field(ge=1, le=16)] | None = None
    thresholds: dict[str, Score] = Field(default_factory=dict)
    retry_s: Annotated[float, Field(gt=0, le=3600)] = 15.0  # retry a missing bundle this often


class TriggerConfig(Section):
    """When to inspect: every frame, on a GPIO edge, or when asked (MQTT)."""

    mode: Literal["continuous", "gpio", "demand"] = "continuous"
    frames: Annotated[int, Field(ge=1, le=1000)] = 1  # frames inspected per trigger
    pull_up: bool = True  # a button to ground; False for an active-high sensor
    bounce_s: Annotated[float, Field(ge=0, le=5)] = 0.05
    pin: Pin | None = Field(default=None, validate_default=True)

    @field_validator("pin")
    @classmethod
    def _pin_needed_for_gpio(cls, value: int | None, info) -> int | None:
        if info.data.get("mode") == "gpio" and value is None:
            raise PydanticCustomError("required", 'required when trigger.mode = "gpio"')
        return value


class DecideConfig(Section):
    """Debounce and hysteresis: raise when k of the last n frames alarm, clear after m clean."""

    # Frames, not seconds: at 15 FPS a defect crossing the view lasts 15-30 frames. 3 of 4 frames
    # rejects single-frame flicker; 5 clean frames keep one defect whose score dips as one event.
    n: Annotated[int, Field(ge=1, le=1000)] = 4
    m: Annotated[int, Field(ge=1, le=1000)] = 5
    k: Annotated[int, Field(ge=1, le=1000)] = Field(default=3, validate_default=True)

    @field_validator("k")
    @classmethod
    def _k_not_above_n(cls, value: int, info) -> int:
        n = info.data.get("n")
        if n is not None and value > n:
            raise PydanticCustomError("order", "must be <= decide.n ({n})", {"n": n})
        return value


class GpioConfig(Section):
    """LEDs, buzzer, relay and acknowledge button (BCM pin numbers)."""

    enabled: bool = True
    pin_factory: Literal["mock", "lgpio", "rpigpio", "pigpio", "native"] | None = None
    green: Pin | None = 17
    red: Pin | None = 27
    amber: Pin | None = 22
    buzzer: Pin | None = None
    relay: Pin | None = None
    relay_active_high: bool = True
    ack_button: Pin | None = None
    red_mode: Literal["blink", "hold"] = "blink"
    latch: bool = False  # keep red/relay/buzzer on after a defect until acknowledged
    beep_s: Annotated[float, Field(gt=0, le=10)] = 0.3


class SnapshotConfig(Section):
    """Heat-map snapshots on a defect, with retention so they never fill the disk."""

    enabled: bool = True
    dir: PathText = "snapshots"  # relative to state_dir
    max_count: Annotated[int, Field(ge=1, le=1_000_000)] = 300
    max_bytes: Annotated[int, Field(ge=10_000)] = 200_000_000
    max_age_s: Annotated[float, Field(gt=0)] = 14 * 86400.0
    min_free_bytes: Annotated[int, Field(ge=0)] = 100_000_000  # kept free: oldest go, then pause
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 85


class OutputConfig(Section):
    """stdout JSON lines (journald-friendly), and how often every output gets stats."""

    stdout: bool = True
    results: bool = False  # also one line per inferred frame (noisy)
    # The one stats interval: stdout, MQTT and any other output get the same stats line.
    stats_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class PipelineConfig(Section):
    """Capture -> bounded queue -> inference."""

    queue: Annotated[int, Field(ge=1, le=64)] = 2
    # newest: drop the oldest queued frame (live cameras); block: back-pressure (files, folders);
    # auto: newest for live sources, block for files and folders.
    drop: Literal["auto", "newest", "block"] = "auto"
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0


class Config(Section):
    """The whole daemon configuration."""

    state_dir: PathText | None = None  # None: $STATE_DIRECTORY (systemd) or ~/.local/state/pi-inspect
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    trigger: TriggerConfig = TriggerConfig()
    decide: DecideConfig = DecideConfig()
    gpio: GpioConfig = GpioConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    output: OutputConfig = OutputConfig()
    pipeline: PipelineConfig = PipelineConfig()
    mqtt: MqttConfig = MqttConfig()
    console: ConsoleConfig = ConsoleConfig()

    @model_validator(mode="after")
    def _pins_unique(self) -> Config:
        conflicts = pin_conflicts(self.gpio.model_dump(), self.trigger.model_dump(), _PINS)
        if conflicts:
            key, pin, other = conflicts[0]
            raise PydanticCustomError(
                "pin_conflict",
                "{key}: pin {pin} is already used by {other}",
                {"key": key, "pin": pin, "other": other},
            )
        return self

    def resolved_state_dir(self) -> Path:
        """Where snapshots (and the MQTT spool) live."""
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "pi-inspect"

    def snapshot_dir(self) -> Path:
        path = Path(self.snapshots.dir).expanduser()
        return path if path.is_absolute() else self.resolved_state_dir() / path


_GPIO_PIN_KEYS = ("green", "red", "amber", "buzzer", "relay", "ack_button")
_PINS = {k: getattr(GpioConfig(), k) for k in _GPIO_PIN_KEYS}  # the pin keys and defaults


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        msg = "unknown key" + suggestion(tuple(err.get("loc", ())), Config)
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:
        return msg if ":" in msg else f"(top level): {msg}"
    return f"{loc}: {msg}"


def problems_of(error: ValidationError) -> list[str]:
    """One ``key.path: message`` line per problem, in file order."""
    return [_format_error(e) for e in error.errors(include_url=False)]


def _nul_problems(data: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Every string (key or value) holding a NUL byte: no file name, host or topic may."""
    found: list[str] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, path)]
    while stack:  # iterative: nesting depth is the caller's data, not our stack
        value, at = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                if "\0" in name:
                    found.append(f"{'.'.join((*at, repr(name)))}: key contains a NUL byte")
                else:
                    stack.append((item, (*at, name)))
        elif isinstance(value, list):
            stack.extend((item, (*at, str(i))) for i, item in enumerate(value))
        elif isinstance(value, str) and "\0" in value:
            found.append(f"{'.'.join(at) or '(top level)'}: contains a NUL byte")
    return sorted(found)


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a TOML-shaped dict. Raises ConfigError listing every problem."""
    problems = _nul_problems(data)
    if not problems:
        try:
            return Config.model_validate(data)
        except ValidationError as exc:
            problems = problems_of(exc)
        except RecursionError:
            problems = ["(top level): nested too deeply"]
        add_pin_problems(problems, data, _PINS)  # cross-field checks skip invalid sections
    noun = "problem" if len(problems) == 1 else "problems"
    raise ConfigError(f"invalid config: {len(problems)} {noun}", problems) from None


def _resolve_relative(config: Config, base: Path) -> Config:
    """Paths in a config file are relative to the file, not to the daemon's working directory."""

    def rel(value: str | None) -> str | None:
        # "~" and "~user" are expanded when used (edge.preflight checks the user exists).
        if value is None or not value or value.startswith("~") or Path(value).is_absolute():
            return value
        return str(base / value)

    source = config.source
    if source.resolved().is_path:
        source = source.model_copy(update={"uri": rel(source.uri)})
    model = config.model.model_copy(update={"bundle": rel(config.model.bundle)})
    anomaly = config.anomaly.model_copy(update={"bundle": rel(config.anomaly.bundle)})
    return config.model_copy(
        update={"source": source, "model": model, "anomaly": anomaly, "state_dir": rel(config.state_dir)}
    )


def with_overrides(config: Config, source: str | None = None, bundle: str | None = None) -> Config:
    """``config`` with the command line's ``--source`` / ``--bundle`` applied (validated again)."""
    if not source and not bundle:
        return config
    data = config.model_dump()
    if source:
        data["source"]["uri"] = source
    if bundle:
        data["model"]["bundle"] = bundle
    return parse_config(data)


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid config: {file} is not valid TOML", [f"{file}: {exc}"]) from None
    except RecursionError:
        raise ConfigError(
            f"invalid config: {file} is not valid TOML", [f"{file}: nested too deeply"]
        ) from None
    return _resolve_relative(parse_config(data), file.resolve().parent)
