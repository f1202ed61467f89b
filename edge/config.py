"""The daemon's configuration: one TOML file, strictly validated, every problem with its key path.

Each section is a pydantic model with ``extra="forbid"`` so a typo is an error, not a silently
ignored key. The core's sections are here; each output plugin brings its own (``[stdout]``,
``[mqtt]``, ``[console]``, ...), found through entry points, so a new output never changes this
file. A key renamed or removed by an upgrade is carried over with a warning
(``pi_inspect.edge.config_migrate``), so an old config still starts. Validators do no I/O: whether a path exists or a camera opens is the runtime's
business (and gives a fault LED there, not a config error). An empty file -- or no file -- is a
valid config: the defaults run the built-in demo bundle on USB camera 0.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pi_inspect.edge import __version__
from pi_inspect.edge.anomaly_config import AnomalyConfig
from pi_inspect.edge.collect import CollectConfig
from pi_inspect.edge.config_checks import (  # noqa: F401 - PathText and path_text: part of the config API
    PathText,
    add_pin_problems,
    nul_problems,
    path_text,
    pin_conflicts,
    suggestion,
)
from pi_inspect.edge.config_file import read_toml
from pi_inspect.edge.config_migrate import migrate
from pi_inspect.edge.drift import DriftConfig
from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.fleet.config import FleetConfig
from pi_inspect.edge.identity import DeviceConfig
from pi_inspect.edge.outputs import OutputContext
from pi_inspect.edge.outputs.registry import plugins
from pi_inspect.edge.section import Section
from pi_inspect.edge.shadow_config import ShadowConfig
from pi_inspect.edge.source_config import SourceConfig, SourceKind  # noqa: F401 - config API
from pi_inspect.edge.station_config import (
    DEFAULT,
    SECTIONS,
    StationName,
    cross_problems,
    station_model,
)

# BCM numbers of the 40-pin header's GPIOs: 0-27 on every Pi with that header (28+ are not wired).
Pin = Annotated[int, Field(ge=0, le=27)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]

log = logging.getLogger(__name__)


class ModelConfig(Section):
    """Which bundle to run and how; thresholds here override the bundle's."""

    bundle: PathText | None = None  # unset: the built-in demo bundle
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
    # Parts (pi_inspect.edge.parts): each trigger yields exactly one result.
    deadline_ms: Annotated[float, Field(gt=0, le=600_000)] | None = None
    late_verdict: Literal["ng", "ok", "result"] = "ng"
    frame_timeout_ms: Annotated[float, Field(gt=0, le=600_000)] = 1000.0
    max_pending: Annotated[int, Field(ge=1, le=10_000)] = 32

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


class RejectConfig(Section):
    """Reject pulses on ``gpio.relay``: one per rejected part, ``delay_ms`` after its trigger
    (the part's travel from camera to ejector), in trigger order. While enabled the relay
    pulses for parts instead of following defects."""

    enabled: bool = False
    delay_ms: Annotated[float, Field(ge=0, le=600_000)] = 0.0
    pulse_ms: Annotated[float, Field(gt=0, le=60_000)] = 100.0


class SnapshotConfig(Section):
    """Defect snapshots (with heat maps) and collected samples ([collect], the `collect`
    command), under one retention so they never fill the disk."""

    enabled: bool = True
    dir: PathText = "snapshots"  # relative to state_dir
    max_count: Annotated[int, Field(ge=1, le=1_000_000)] = 300
    max_bytes: Annotated[int, Field(ge=10_000)] = 200_000_000
    max_age_s: Annotated[float, Field(gt=0)] = 14 * 86400.0
    min_free_bytes: Annotated[int, Field(ge=0)] = 100_000_000  # kept free: oldest go, then pause
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 85


class OutputConfig(Section):
    """What every output gets alike."""

    # The one stats interval: stdout, MQTT and any other output get the same stats line.
    stats_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class PipelineConfig(Section):
    """Capture -> bounded queue -> inference."""

    queue: Annotated[int, Field(ge=1, le=64)] = 2
    # newest: drop the oldest queued frame (live cameras); block: back-pressure (files, folders);
    # auto: newest for live sources, block for files and folders.
    drop: Literal["auto", "newest", "block"] = "auto"
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0


StationConfig = station_model(
    ModelConfig, GpioConfig, TriggerConfig, DecideConfig, RejectConfig, SnapshotConfig,
    PipelineConfig,
)  # fmt: skip


class CoreConfig(Section):
    """The daemon's own sections; ``Config`` adds one section per output plugin."""

    state_dir: PathText | None = None  # unset: $STATE_DIRECTORY (systemd) or ~/.local/state/pi-inspect
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    source: SourceConfig = SourceConfig()
    model: ModelConfig = ModelConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    trigger: TriggerConfig = TriggerConfig()
    decide: DecideConfig = DecideConfig()
    gpio: GpioConfig = GpioConfig()
    reject: RejectConfig = RejectConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    collect: CollectConfig = Field(default_factory=CollectConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    output: OutputConfig = OutputConfig()
    pipeline: PipelineConfig = PipelineConfig()
    fleet: FleetConfig = FleetConfig()
    # Several inspection stations in one daemon, by name (docs/stations.md); none: one station,
    # "default"
    stations: dict[StationName, StationConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pins_unique(self) -> CoreConfig:
        conflicts = pin_conflicts(self.gpio.model_dump(), self.trigger.model_dump(), _PINS)
        if conflicts:
            key, pin, other = conflicts[0]
            raise PydanticCustomError(
                "pin_conflict",
                "{key}: pin {pin} is already used by {other}",
                {"key": key, "pin": pin, "other": other},
            )
        if self.reject.enabled and (not self.gpio.enabled or self.gpio.relay is None):
            raise PydanticCustomError(
                "reject_relay", "reject.enabled: needs gpio.enabled and a gpio.relay pin"
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

    def station_configs(self) -> dict[str, CoreConfig]:
        """Each station's whole config, in the order written: its own sections over the
        top-level ones, its state under ``<state_dir>/stations/<name>``. Without
        ``[stations]``: this config, as the one station ``default``."""
        if not self.stations:
            return {DEFAULT: self}
        root = self.resolved_state_dir()
        found: dict[str, CoreConfig] = {}
        for name, station in self.stations.items():
            update: dict[str, Any] = {
                key: value for key in SECTIONS if (value := getattr(station, key)) is not None
            }
            update.update(state_dir=str(root / "stations" / name), stations={})
            found[name] = self.model_copy(update=update)
        return found

    def snapshot_dir(self) -> Path:
        path = Path(self.snapshots.dir).expanduser()
        return path if path.is_absolute() else self.resolved_state_dir() / path


def _with_plugins() -> type[CoreConfig]:
    """The whole daemon configuration: the core's sections and one per output plugin."""
    sections: dict[str, Any] = {
        name: (plugin.section, Field(default_factory=plugin.section))
        for name, plugin in plugins().items()
    }
    return create_model(
        "Config",
        __base__=CoreConfig,
        __module__=__name__,
        __doc__="The whole daemon configuration.",
        **sections,
    )


Config = _with_plugins()

def output_context(config: CoreConfig) -> OutputContext:
    """What every output plugin is built with, from ``config`` (the first station's camera
    and snapshots; each station's snapshots in ``snapshot_dirs``)."""
    stations = config.station_configs()
    dirs = {
        name: (c.snapshot_dir() if c.snapshots.enabled else None) for name, c in stations.items()
    }
    first = next(iter(stations.values()))
    source = first.source
    camera = f"{source.resolved().name} {source.uri}".strip()
    return OutputContext(
        config.device.id, config.resolved_state_dir(), next(iter(dirs.values())), __version__,
        camera, stations=tuple(stations), snapshot_dirs=dirs,
    )  # fmt: skip


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


Warn = Callable[[str], None]


def parse_config(data: dict[str, Any], *, warn: Warn = log.warning) -> Config:
    """Validate a TOML-shaped dict. Raises ConfigError listing every problem.

    Keys an upgrade renamed or removed are carried over first, each with one ``warn`` line
    that says what to write instead; only a value that cannot be carried over is a problem.
    """
    problems = nul_problems(data)
    if not problems:
        data, warnings, problems = migrate(data)
        for line in warnings:
            warn(line)
    if not problems:
        try:
            config = Config.model_validate(data)
            problems = cross_problems(config.station_configs(), _PINS) if config.stations else []
            if not problems:
                return config
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
        # "~" and "~user" are expanded when used (pi_inspect.edge.preflight checks the user exists).
        if value is None or not value or value.startswith("~") or Path(value).is_absolute():
            return value
        return str(base / value)

    def paths(part: Any) -> dict[str, Any]:
        """The path keys of ``part`` (the top level or one station), made absolute."""
        update: dict[str, Any] = {}
        source = part.source
        if source is not None and source.resolved().is_path:
            update["source"] = source.model_copy(update={"uri": rel(source.uri)})
        for key in ("model", "anomaly"):
            if (section := getattr(part, key)) is not None:
                update[key] = section.model_copy(update={"bundle": rel(section.bundle)})
        return update

    stations = {
        name: station.model_copy(update=paths(station)) for name, station in config.stations.items()
    }
    return config.model_copy(
        update={**paths(config), "state_dir": rel(config.state_dir), "stations": stations}
    )


def with_overrides(config: Config, source: str | None = None, bundle: str | None = None) -> Config:
    """``config`` with the command line's ``--source`` / ``--bundle`` applied (validated again)."""
    if not source and not bundle:
        return config
    if len(config.stations) > 1:
        raise ConfigError(
            "--source and --bundle name one camera and one model",
            ["with several [stations], set each station's source and model in the config"],
        )
    data = config.model_dump()
    own = next(iter(data["stations"].values()), None)  # one [stations.<name>]: its sections
    for key, field, value in (("source", "uri", source), ("model", "bundle", bundle)):
        if value:
            section = own[key] if own is not None and own[key] is not None else data[key]
            section[field] = value
    return parse_config(data)


def load_config(path: str | os.PathLike[str] | None, *, warn: Warn = log.warning) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    data = read_toml(path)
    return _resolve_relative(parse_config(data, warn=warn), Path(path).resolve().parent)
