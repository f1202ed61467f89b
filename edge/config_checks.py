"""Config checks that look past the first error: pin conflicts on the data as written, and the
nearest known key for an unknown one. Used by pi_inspect.edge.config; no pydantic models defined here. Also the string rules every path key
follows (``PathText``), shared by the sections in modules of their own."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")


def path_text(value: str) -> str:
    """String rules for a path (no I/O): non-empty, a valid file name on Linux, ``~`` or
    ``~user`` only as the first component. Whether it exists is ``pi_inspect.edge.preflight``'s business."""
    if not value:
        raise ValueError("must not be empty (leave the key out for the default)")
    try:
        encoded = os.fsencode(value)
    except UnicodeError:
        raise ValueError("is not a valid file name (unencodable characters)") from None
    if len(encoded) >= 4096:
        raise ValueError("is longer than the 4095 bytes a path may have")
    if any(len(part) > 255 for part in encoded.split(b"/")):
        raise ValueError("has a component longer than the 255 bytes a file name may have")
    if value.startswith("~"):
        user = value[1:].split("/", 1)[0]
        if user and not _USER.fullmatch(user):
            raise ValueError(f"'~{user}' is not a user name")
    return value


PathText = Annotated[str, AfterValidator(path_text)]


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


def nul_problems(data: Any, path: tuple[str, ...] = ()) -> list[str]:
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
