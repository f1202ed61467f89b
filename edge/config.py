"""The daemon's configuration: one TOML file, strictly validated, every problem with its key path.

Each section is a pydantic model with ``extra="forbid"`` so a typo is an error, not a silently
ignored key. Validators do no I/O: whether a path exists or a camera opens is the runtime's
business (and gives a fault LED there, not a config error). An empty file -- or no file -- is a
valid config: the defaults run the built-in demo bundle on USB camera 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the edge extra brings tomli there)
    import tomli as tomllib

Pin = Annotated[int, Field(ge=0, le=40)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SourceConfig(_Section):
    """Where frames come from."""

    kind: Literal["auto", "usb", "picamera2", "stream", "file", "folder"] = "auto"
    # USB index ("0") or /dev/videoN, rtsp:// or http(s):// URL, video file, image folder.
    uri: str = "0"
    loop: bool = False  # video file / image folder: start again at the end
    width: Annotated[int, Field(ge=16, le=8192)] | None = None  # camera request, if set
    height: Annotated[int, Field(ge=16, le=8192)] | None = None
    fps: Annotated[float, Field(gt=0, le=240)] | None = None
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise PydanticCustomError("order", "must be >= reconnect_min_s ({low})", {"low": low})
        return value


class ModelConfig(_Section):
    """Which bundle to run and how; thresholds here override the bundle's."""

    bundle: str | None = None  # None: the built-in demo bundle
    backend: Literal["auto", "litert", "tflite_runtime"] = "auto"
    num_threads: Annotated[int, Field(ge=1, le=16)] | None = None
    thresholds: dict[str, Score] = Field(default_factory=dict)
    retry_s: Annotated[float, Field(gt=0, le=3600)] = 15.0  # retry a missing bundle this often


class TriggerConfig(_Section):
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


class DecideConfig(_Section):
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


class GpioConfig(_Section):
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


class SnapshotConfig(_Section):
    """Heat-map snapshots on a defect, with retention so they never fill the disk."""

    enabled: bool = True
    dir: str = "snapshots"  # relative to state_dir
    max_count: Annotated[int, Field(ge=1, le=1_000_000)] = 300
    max_bytes: Annotated[int, Field(ge=10_000)] = 200_000_000
    max_age_s: Annotated[float, Field(gt=0)] = 14 * 86400.0
    # Oldest snapshots go (and new ones pause) so this much stays free on the state dir's disk:
    # the spool and the system keep room however the card fills.
    min_free_bytes: Annotated[int, Field(ge=0)] = 100_000_000
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 85


class OutputConfig(_Section):
    """stdout JSON lines (journald-friendly)."""

    stdout: bool = True
    results: bool = False  # also one line per inferred frame (noisy)
    stats_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class PipelineConfig(_Section):
    """Capture -> bounded queue -> inference."""

    queue: Annotated[int, Field(ge=1, le=64)] = 2
    # newest: drop the oldest queued frame (live cameras); block: back-pressure (files, folders);
    # auto: newest for live sources, block for files and folders.
    drop: Literal["auto", "newest", "block"] = "auto"
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0


# --- [mqtt]: owned by the MQTT engineer (edge/mqtt/config.py). ---------------------------------
# Until edge.mqtt lands, a placeholder that only knows `enabled = false` keeps the key reserved.
try:
    from edge.mqtt.config import MqttConfig
except ModuleNotFoundError as _exc:  # pragma: no cover - disappears once edge.mqtt exists
    if not (_exc.name or "").startswith("edge.mqtt"):
        raise

    class MqttConfig(_Section):  # type: ignore[no-redef]
        """Placeholder until edge.mqtt exists: MQTT cannot be enabled yet."""

        enabled: Literal[False] = False


class Config(_Section):
    """The whole daemon configuration."""

    state_dir: str | None = None  # None: $STATE_DIRECTORY (systemd) or ~/.local/state/pi-inspect
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    trigger: TriggerConfig = TriggerConfig()
    decide: DecideConfig = DecideConfig()
    gpio: GpioConfig = GpioConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    output: OutputConfig = OutputConfig()
    pipeline: PipelineConfig = PipelineConfig()
    mqtt: MqttConfig = MqttConfig()

    @model_validator(mode="after")
    def _pins_unique(self) -> Config:
        used: dict[int, str] = {}
        pins = [(f"gpio.{name}", getattr(self.gpio, name)) for name in _GPIO_PIN_KEYS]
        pins.append(("trigger.pin", self.trigger.pin if self.trigger.mode == "gpio" else None))
        for key, pin in pins:
            if pin is None or (not self.gpio.enabled and key.startswith("gpio.")):
                continue
            if pin in used:
                raise PydanticCustomError(
                    "pin_conflict",
                    "{key}: pin {pin} is already used by {other}",
                    {"key": key, "pin": pin, "other": used[pin]},
                )
            used[pin] = key
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


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid"))
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:
        return msg if ":" in msg else f"(top level): {msg}"
    return f"{loc}: {msg}"


def problems_of(error: ValidationError) -> list[str]:
    """One ``key.path: message`` line per problem, in file order."""
    return [_format_error(e) for e in error.errors(include_url=False)]


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a TOML-shaped dict. Raises ConfigError listing every problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = problems_of(exc)
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(f"invalid config: {len(problems)} {noun}", problems) from None


def _resolve_relative(config: Config, base: Path) -> Config:
    """Paths in a config file are relative to the file, not to the daemon's working directory."""

    def rel(value: str | None) -> str | None:
        if value is None or not value or Path(value).expanduser().is_absolute():
            return value
        return str(base / value)

    source = config.source
    if source.kind in ("file", "folder") or (
        source.kind == "auto" and not _looks_like_camera_or_url(source.uri)
    ):
        source = source.model_copy(update={"uri": rel(source.uri)})
    model = config.model.model_copy(update={"bundle": rel(config.model.bundle)})
    return config.model_copy(
        update={"source": source, "model": model, "state_dir": rel(config.state_dir)}
    )


def _looks_like_camera_or_url(uri: str) -> bool:
    return uri.isdigit() or uri.startswith("/dev/") or "://" in uri or uri == "picamera2"


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
    return _resolve_relative(parse_config(data), file.resolve().parent)
