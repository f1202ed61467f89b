"""``[stations.<name>]``: several inspection stations in one daemon (two cameras on one Pi).

Each station has its own source, model (and anomaly model), trigger, decide, pins,
snapshots, collection, shadow, drift and pipeline. A section a station leaves out is the
top-level one, so what stations share is written once. A config without ``[stations]`` is one
station named ``default`` and runs exactly as before: its state stays in ``state_dir``; with
``[stations]`` each station keeps its own under ``<state_dir>/stations/<name>``.

Names are MQTT topic levels (``<prefix>/<device>/<station>/...``), so they are short, plain
and never one of the device's own topic names.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from pi_inspect.edge.anomaly_config import AnomalyConfig
from pi_inspect.edge.collect import CollectConfig
from pi_inspect.edge.drift import DriftConfig
from pi_inspect.edge.section import Section
from pi_inspect.edge.shadow_config import ShadowConfig
from pi_inspect.edge.source_config import SourceConfig

DEFAULT = "default"  # the one station of a config without [stations]
# The topic names under <prefix>/<device>/: a station named so would shadow them.
RESERVED = frozenset(
    {"availability", "desired", "report", "state", "defect", "part", "result", "stats",
     "snapshot", "cmd", "stations"}
)  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
# The sections a station may have of its own; the others (outputs, device, fleet) are shared.
SECTIONS = (
    "source", "model", "anomaly", "trigger", "decide", "gpio", "reject", "snapshots",
    "collect", "shadow", "drift", "pipeline",
)  # fmt: skip


def station_name(value: str) -> str:
    """A station name: 1-32 letters, digits, ``-`` or ``_`` (an MQTT topic level, a file
    name and a Home Assistant object id alike), not one of the device's topic names."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a station name: 1-32 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if value.lower() in RESERVED:
        raise ValueError(f"{value!r} is a topic name of the device; choose another station name")
    return value


StationName = Annotated[str, AfterValidator(station_name)]


def station_model(model: type, gpio: type, trigger: type, decide: type, reject: type,
                  snapshots: type, pipeline: type) -> type[Section]:  # fmt: skip
    """The ``[stations.<name>]`` model, from the core's section types (they live in
    ``pi_inspect.edge.config``, which imports this module)."""
    from pydantic import Field, create_model

    fields: dict[str, Any] = {
        "source": SourceConfig, "model": model, "anomaly": AnomalyConfig,
        "trigger": trigger, "decide": decide, "gpio": gpio, "reject": reject,
        "snapshots": snapshots, "collect": CollectConfig, "shadow": ShadowConfig,
        "drift": DriftConfig, "pipeline": pipeline,
    }  # fmt: skip
    return create_model(
        "StationConfig",
        __base__=Section,
        __module__=__name__,
        __doc__="One inspection station; a section left out is the top-level one.",
        **{
            name: (
                kind | None,
                Field(None, description=f"this station's own [{name}]; unset: the top-level one"),
            )
            for name, kind in fields.items()
        },
    )


def camera_key(source: SourceConfig) -> tuple[str, str] | None:
    """What a live camera is known by (two stations cannot both open it); None for files,
    folders and streams, which several stations may read. Reads no disk."""
    kind, uri = source.kind, source.uri
    if kind == "auto":
        kind = "usb" if uri.isdigit() or uri.startswith("/dev/") else kind
        kind = "picamera2" if uri == "picamera2" else kind
    if kind == "usb":
        return ("usb", f"/dev/video{uri}" if uri.isdigit() else uri)
    if kind == "picamera2":
        return ("picamera2", f"camera_num {source.camera_num}")
    return None


def cross_problems(stations: dict[str, Any], pins: dict[str, int | None]) -> list[str]:
    """Every pin and camera two stations both claim, and each station's own pin clashes, one
    line each with its key path. ``stations``: name -> the station's resolved config."""
    from pi_inspect.edge.config_checks import pin_conflicts

    problems: list[str] = []
    pin_owner: dict[int, str] = {}
    camera_owner: dict[tuple[str, str], str] = {}
    for name, config in stations.items():
        at = f"stations.{name}"
        gpio, trigger = config.gpio.model_dump(), config.trigger.model_dump()
        for key, pin, other in pin_conflicts(gpio, trigger, pins):
            problems.append(f"{at}.{key}: pin {pin} is already used by {at}.{other}")
        used = [(f"gpio.{k}", gpio.get(k)) for k in pins] if gpio.get("enabled") else []
        used.append(("trigger.pin", trigger.get("pin") if trigger.get("mode") == "gpio" else None))
        for key, pin in used:
            if pin is None:
                continue
            owner = pin_owner.setdefault(pin, f"{at}.{key}")
            if not owner.startswith(f"{at}."):
                problems.append(f"{at}.{key}: pin {pin} is already used by {owner}")
        if config.reject.enabled and (not config.gpio.enabled or config.gpio.relay is None):
            problems.append(f"{at}.reject.enabled: needs gpio.enabled and a gpio.relay pin")
        camera = camera_key(config.source)
        if camera is not None:
            owner = camera_owner.setdefault(camera, at)
            if owner != at:
                problems.append(f"{at}.source: {camera[0]} {camera[1]} is already {owner}'s camera")
    return problems
