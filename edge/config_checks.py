"""Config checks that look past the first error: pin conflicts on the data as written, and the
nearest known key for an unknown one. Used by edge.config; no pydantic models defined here."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any


def pin_conflicts(
    gpio: Any, trigger: Any, pins: Mapping[str, int | None]
) -> list[tuple[str, int, str]]:
    """``(key, pin, other key)`` for every pin used twice. Works on the sections as written
    (dicts; ``pins`` gives the gpio pin keys and their defaults), so a conflict is reported
    alongside other problems, not only once they are fixed."""
    gpio = gpio if isinstance(gpio, dict) else {}
    trigger = trigger if isinstance(trigger, dict) else {}
    enabled = gpio.get("enabled", True) is not False
    found = [(f"gpio.{k}", gpio.get(k, default)) for k, default in pins.items() if enabled]
    if trigger.get("mode") == "gpio":
        found.append(("trigger.pin", trigger.get("pin")))
    used: dict[int, str] = {}
    conflicts = []
    for key, pin in found:
        if not isinstance(pin, int) or isinstance(pin, bool):
            continue
        if pin in used:
            conflicts.append((key, pin, used[pin]))
        else:
            used[pin] = key
    return conflicts


def add_pin_problems(problems: list[str], data: Any, pins: Mapping[str, int | None]) -> None:
    """Add the pin conflicts of the data as written to ``problems`` (each once)."""
    if not isinstance(data, dict):
        return
    for key, pin, other in pin_conflicts(data.get("gpio"), data.get("trigger"), pins):
        line = f"{key}: pin {pin} is already used by {other}"
        if not any(line in p for p in problems):
            problems.append(line)


def camera_index(value: Any) -> Any:
    """``uri = 0`` (a TOML integer) is camera index 0, as ``uri = "0"`` is."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


def known_keys(loc: tuple, root: Any) -> list[str]:
    """The keys the section at ``loc`` (without its last part) of model ``root`` accepts."""
    model: Any = root
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def suggestion(loc: tuple, root: Any) -> str:
    """`` (did you mean 'output'?)`` for an unknown key close to a known one, else ``""``."""
    if not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known_keys(loc, root), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
