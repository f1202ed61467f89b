"""Configs survive upgrades: keys that were renamed or removed, and how an old config is read.

``MOVED`` and ``REMOVED`` list every key an upgrade took away (a dotted key path). Loading a
config that still uses one carries it over and gives one warning per key saying what to write
instead, so a station keeps inspecting after a routine upgrade; ``pi-inspect config --migrate
FILE`` prints the file rewritten. Only a value that cannot be carried over (the new key set to
something else as well) is a problem, and refuses to start as any config problem does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# old key -> the key that took its place (the value is carried over as it is)
MOVED: dict[str, str] = {
    "mqtt.device_id": "device.id",
    "output.stdout": "stdout.enabled",
    "output.results": "stdout.results",
}
# old key -> why it went and what to write instead (the value is dropped)
REMOVED: dict[str, str] = {
    "mqtt.stats_interval_s": "stats have one interval for every output: set output.stats_interval_s",
    "model.workers": "side-by-side copies of the model gained nothing; model.num_threads remains",
}


def _parent(data: dict[str, Any], path: list[str], create: bool) -> dict[str, Any] | None:
    """The table holding ``path``'s last key, or None. Each table on the way is copied into
    its parent first (made, when ``create``), so the caller's data is never changed."""
    table = data
    for key in path[:-1]:
        inner = table.get(key, {} if create else None)
        if not isinstance(inner, dict):
            return None
        table[key] = inner = dict(inner)
        table = inner
    return table


def migrate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the config with old keys carried over, one warning per old key, problems)."""
    data = dict(data)  # tables are copied where a key moves (nesting may be deep: no recursion)
    warnings: list[str] = []
    problems: list[str] = []
    for old, why in REMOVED.items():
        path = old.split(".")
        table = _parent(data, path, create=False)
        if table is not None and path[-1] in table:
            del table[path[-1]]
            warnings.append(f"{old}: removed ({why}); delete it")
    for old, new in MOVED.items():
        path = old.split(".")
        table = _parent(data, path, create=False)
        if table is None or path[-1] not in table:
            continue
        value = table.pop(path[-1])
        target_path = new.split(".")
        target = _parent(data, target_path, create=True)
        if target is None:
            problems.append(f"{old}: renamed to {new}, but {'.'.join(target_path[:-1])} is not a table")
        elif target_path[-1] in target and target[target_path[-1]] != value:
            problems.append(
                f"{old}: renamed to {new}, which is set to another value as well: keep one"
            )
        else:
            target[target_path[-1]] = value
            warnings.append(f"{old}: renamed to {new}; write {_assignment(new, value)} instead")
    return data, warnings, problems


def _assignment(key: str, value: Any) -> str:
    table, _, name = key.rpartition(".")
    return f"[{table}] {name} = {_value(value)}" if table else f"{name} = {_value(value)}"


# -- TOML out (``config --migrate``) ------------------------------------------------------------
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return value.isoformat()  # TOML's dates and times


def dumps(data: dict[str, Any]) -> str:
    """``data`` as TOML: the top level's plain keys, then one ``[table]`` per table."""
    lines: list[str] = []

    def table(body: dict[str, Any], path: tuple[str, ...]) -> None:
        plain = [(k, v) for k, v in body.items() if not isinstance(v, dict)]
        tables = [(k, v) for k, v in body.items() if isinstance(v, dict)]
        if path and (plain or not tables):
            lines.append(f"[{'.'.join(_key(p) for p in path)}]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in plain)
        if plain or (path and not tables):
            lines.append("")
        for name, inner in tables:
            table(inner, (*path, name))

    table(data, ())
    return "\n".join(lines).rstrip() + "\n"
