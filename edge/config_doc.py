"""The config reference, generated from the config models: every key with its type, default,
bounds and meaning (the comment on or above its line in the model's source).

``pi-inspect config --reference`` prints it as Markdown (docs/config.md is that output, and a
test keeps it current); ``pi-inspect config --example`` prints a complete commented config.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from pi_inspect.edge.config import Config
from pi_inspect.edge.config_migrate import MOVED, REMOVED
from pi_inspect.edge.outputs.registry import plugins

_FIELD = re.compile(r"^\s{4}(\w+)\s*:")


@dataclass(frozen=True)
class Key:
    path: str  # "source.uri"
    type: str
    default: Any
    bounds: str
    meaning: str


# Meanings of the keys whose model line carries no comment (a test checks that every key has
# one and that every entry here names a real key).
MEANINGS = {
    "source.kind": "what the source is; auto judges it from uri",
    "source.height": "camera request, if set",
    "source.fps": "camera: the frame rate asked for; video file: the playback rate (demos, dry runs)",
    "source.rotate": "rotate each frame clockwise by this many degrees (after the region)",
    "source.hflip": "mirror each frame left to right",
    "source.vflip": "mirror each frame top to bottom",
    "source.controls.focus": "focus mode: auto, continuous, or manual at lens_position",
    "source.reconnect_min_s": "first wait before reopening a failed source",
    "source.reconnect_max_s": "longest wait between reopen attempts (doubling from the minimum)",
    "model.backend": "inference runtime: LiteRT, the legacy tflite-runtime, or whichever is there",
    "model.num_threads": "interpreter threads (unset: the runtime's choice)",
    "model.thresholds": "per-label score thresholds overriding the bundle's, e.g. { error = 0.6 }",
    "trigger.mode": "inspect every frame, on a GPIO edge, or when asked over MQTT",
    "trigger.bounce_s": "debounce time of the trigger input",
    "trigger.pin": "BCM pin of the trigger input (required for mode gpio)",
    "trigger.deadline_ms": "a part's result later than this after its trigger is late (unset: never)",
    "trigger.late_verdict": "a late part's verdict: ng (reject), ok, or result (the model's)",
    "trigger.frame_timeout_ms": "a part with no frame this long after its trigger is missed",
    "trigger.max_pending": "parts waiting for frames at most; another trigger is missed",
    "fleet.enabled": "follow the desired state the workstation publishes for this station",
    "fleet.url_prefix": "bundles are fetched only from URLs that start with this",
    "fleet.max_bytes": "largest bundle archive fetched",
    "fleet.ca_file": "https:// url_prefix: the CA file that signed the workstation's certificate "
    "(default: the system's CAs)",
    "reject.enabled": "pulse gpio.relay for each rejected part instead of following defects",
    "reject.delay_ms": "from a part's trigger to its reject pulse (camera to ejector travel)",
    "reject.pulse_ms": "length of a reject pulse",
    "decide.m": "clean frames that clear a raised defect",
    "decide.k": "alarming frames among the last n that raise a defect",
    "gpio.enabled": "drive LEDs, buzzer and relay (false: no GPIO at all)",
    "gpio.pin_factory": "gpiozero pin factory (unset: gpiozero's own choice)",
    "gpio.green": "BCM pin of the green LED: running, all well",
    "gpio.red": "BCM pin of the red LED: an alarm condition holds",
    "gpio.amber": "BCM pin of the amber LED: a fault (no camera, no model)",
    "gpio.buzzer": "BCM pin of a buzzer that beeps on each new defect",
    "gpio.relay": "BCM pin of a relay held while a defect is active (e.g. to stop the machine)",
    "gpio.relay_active_high": "relay energised by a high output",
    "gpio.ack_button": "BCM pin of an acknowledge button (clears a latched alarm)",
    "gpio.red_mode": "red LED blinks or holds during a defect",
    "gpio.beep_s": "length of one buzzer beep",
    "snapshots.enabled": "save a heat-map snapshot of each defect",
    "snapshots.max_count": "most snapshots kept (oldest removed first)",
    "snapshots.max_bytes": "most bytes of snapshots kept",
    "snapshots.max_age_s": "snapshots older than this are removed",
    "snapshots.jpeg_quality": "JPEG quality of the snapshots",
    "output.stats_interval_s": "seconds between stats lines",
    "pipeline.queue": "frames that may wait between capture and inference",
    "pipeline.heartbeat_timeout_s": "a stage silent this long is a fault (and the watchdog's cue)",
}


def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Per field: the trailing comment on its line, after any comment lines just above it (in
    the class that declares it: ``Config`` inherits the core's and adds the plugins')."""
    lines: list[str] = []
    for cls in reversed(model.__mro__):
        if cls is BaseModel or not (inspect.isclass(cls) and issubclass(cls, BaseModel)):
            continue
        try:
            lines += inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
    out: dict[str, str] = {}
    above: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and line.startswith("    ") and not line.startswith("     "):
            above.append(stripped.lstrip("# ").strip())
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@")):
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            out[match.group(1)] = " ".join([*above, trailing]).strip()
        above = []
    return out


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else None


def _type_name(annotation: Any) -> tuple[str, str]:
    """(type, bounds) of an annotation in words: ``int``, ``"a" | "b"``, ``1..64``."""
    bounds: list[str] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        for m in meta:
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                for part in getattr(m, "metadata", [m]):
                    value = getattr(part, attr, None)
                    if value is not None:
                        bounds.append(f"{sym} {value}")
        name, inner = _type_name(base)
        return name, ", ".join(b for b in [*dict.fromkeys(bounds), inner] if b)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a).lower() for a in typing.get_args(annotation)), ""
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        name = " | ".join(p[0] for p in parts)
        optional = type(None) in typing.get_args(annotation)
        return (f"{name} (optional)" if optional else name), ", ".join(p[1] for p in parts if p[1])
    if origin is dict:
        k, v = typing.get_args(annotation)
        vn, vb = _type_name(v)
        return f"table of {_type_name(k)[0]} -> {vn}", vb
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])[0]}", ""
    if annotation is SecretStr:
        return "string (secret)", ""
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    ), ""


def _default(field: Any) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    factory = field.default_factory
    if factory in (dict, list) or _model_of(factory) is not None:
        return factory()
    return None  # computed where it runs (the hostname, say): the meaning says what it is


def meanings() -> dict[str, str]:
    """``MEANINGS`` and what each output plugin says of its own keys."""
    found = dict(MEANINGS)
    for name, plugin in plugins().items():
        found.update({f"{name}.{key}": text for key, text in plugin.meanings.items()})
    return found


def keys(model: type[BaseModel] = Config, prefix: str = "") -> list[Key]:
    """Every key of ``model`` and its sections, in declaration order."""
    out: list[Key] = []
    comments = _comments(model)
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is not None:
            out += keys(sub, f"{path}.")
            continue
        type_name, bounds = _type_name(field.annotation)
        for m in field.metadata:
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                value = getattr(m, attr, None)
                if value is not None:
                    bounds = ", ".join(b for b in (bounds, f"{sym} {value}") if b)
        meaning = comments.get(name) or field.description or meanings().get(path, "")
        out.append(Key(path, type_name, _default(field), bounds, meaning))
    return out


def sections(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    out = [(prefix.rstrip("."), model)]
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        if sub is not None:
            out += sections(sub, f"{prefix}{name}.")
        elif typing.get_origin(field.annotation) is dict:  # [stations.<name>]: one, named
            value = _model_of(typing.get_args(field.annotation)[1])
            if value is not None:
                out.append((f"{prefix}{name}.<name>", value))
    return out


def _toml(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) or '""' for v in value) + "]"
    if isinstance(value, SecretStr):
        return '""'
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def reference_markdown() -> str:
    """docs/config.md: one table per section."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config models (`pi-inspect config --reference > docs/config.md`);",
        "`pi-inspect config --example` prints the same keys as a commented config, and",
        "`pi-inspect check-config FILE` checks a file against them. Every key is optional.",
    ]
    for name, model in sections():
        doc = (inspect.getdoc(model) or "").splitlines()[0] if inspect.getdoc(model) else ""
        lines += ["", f"## `[{name}]`" if name else "## top level", "", doc, "",
                  "| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]
        for key in keys(model, f"{name}." if name else ""):
            if key.path.count(".") != (name.count(".") + 1 if name else 0):
                continue
            default = _toml(key.default)
            cells = [f"`{key.path}`", key.type, f"`{default}`" if default is not None else "unset",
                     key.bounds, key.meaning]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Renamed and removed keys", "",
              "A config that still uses one of these runs: each is carried over with one warning",
              "(`check-config` shows them, exit 0), and `pi-inspect config --migrate FILE` prints",
              "the file updated.", "", "| old key | now |", "|---|---|"]
    lines += [f"| `{old}` | renamed to `{new}` |" for old, new in MOVED.items()]
    lines += [f"| `{old}` | removed: {why} |" for old, why in REMOVED.items()]
    return "\n".join(lines) + "\n"


def example_toml() -> str:
    """A complete config: every key at its default, with its meaning, type and bounds."""
    lines = ["# pi-inspect config: every key at its default (pi-inspect config --example).",
             "# Delete what you do not change; check with: pi-inspect check-config FILE"]
    for name, model in sections():
        own = [k for k in keys(model, f"{name}." if name else "")
               if k.path.count(".") == (name.count(".") + 1 if name else 0)]
        if not own:
            continue
        if "<name>" in name:  # a table per station: shown, not written out
            lines += ["", f"# [{name}]: each station's own sections (docs/stations.md):"]
            lines += [f"#   {k.path.rsplit('.', 1)[-1]}: {k.meaning}" for k in own]
            continue
        lines.append("")
        if name:
            lines.append(f"[{name}]")
        for key in own:
            note = "; ".join(x for x in (key.meaning.rstrip("."), key.type, key.bounds) if x)
            lines.append(f"# {note}")
            value = _toml(key.default)
            short = key.path.rsplit(".", 1)[-1]
            lines.append(f"{short} = {value}" if value is not None else f"# {short} =   (unset)")
    return "\n".join(lines) + "\n"
