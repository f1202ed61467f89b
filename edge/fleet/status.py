"""What the workstation sees of the fleet: every station's retained report and availability on
the broker, against an inventory of the stations that should be there.

``collect`` listens for ``wait_s`` (retained messages arrive at once) with a ``FleetWatch`` and
returns one ``StationView`` per device; ``StationView.condition`` decides a station's status and
``rows`` what its row says, in ``fleet status`` and on the fleet page alike. paho is imported only
when collecting, so ``pi-inspect fleet --help`` stays cheap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.fleet.watch import FleetWatch, StationView

__all__ = [
    "BrokerUnreachable",
    "StationView",
    "collect",
    "read_inventory",
    "rows",
    "with_inventory",
]

CONNECT_TIMEOUT_S = 10.0


class BrokerUnreachable(PiInspectError, ConnectionError):
    """The broker did not accept the connection."""


def read_inventory(path: Path) -> list[str]:
    """Device ids, one a line; blank lines and ``#`` comments are skipped."""
    devices = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            devices.append(name)
    return devices


def with_inventory(
    views: Mapping[str, StationView], inventory: Iterable[str]
) -> dict[str, StationView]:
    """``views`` plus a view for every inventory device not among them, by device id; each
    inventory device's view is marked ``expected``."""
    merged = dict(views)
    for name in inventory:
        view = merged.get(name)
        merged[name] = replace(view, expected=True) if view else StationView(name, expected=True)
    return dict(sorted(merged.items()))


def collect(
    host: str,
    port: int,
    prefix: str,
    wait_s: float,
    inventory: Iterable[str] = (),
    username: str | None = None,
    password: str | None = None,
) -> dict[str, StationView]:
    """Every station the broker holds a report or availability for under ``prefix``, and the
    inventory's, after listening ``wait_s``; raises ``BrokerUnreachable`` when the broker cannot
    be reached or refuses the connection."""
    with FleetWatch(host, port, prefix, username, password) as watch:
        if not watch.wait_connected(CONNECT_TIMEOUT_S):
            raise BrokerUnreachable(f"broker {host}:{port} {watch.error or 'refused: no answer'}")
        time.sleep(wait_s)
        views = watch.views()
    return with_inventory(views, inventory)


def rows(
    views: Mapping[str, StationView] | Iterable[StationView], now: float, stale_s: float
) -> list[dict[str, Any]]:
    """One row per station, by device id: what ``fleet status --json`` prints and the fleet page
    shows. A field a report lacks, or holds in the wrong type, is None."""
    found = views.values() if isinstance(views, Mapping) else views
    return [_row(view, now, stale_s) for view in sorted(found, key=lambda v: v.device)]


def _row(view: StationView, now: float, stale_s: float) -> dict[str, Any]:
    report = view.report or {}
    identity, health = _dict(report.get("identity")), _dict(report.get("health"))
    at = _number(report.get("at"))
    return {
        "device": view.device,
        "condition": view.condition(now, stale_s),
        "availability": view.availability,
        "in_inventory": view.expected,
        "version": _text(identity.get("version")),
        "hostname": _text(identity.get("hostname")),
        "board": _text(identity.get("board")),
        "bundle": _model(report.get("bundle")),
        "shadow": _model(report.get("shadow")),
        "fault": _text(health.get("fault")),
        "fps": _number(health.get("fps")),
        "cpu_temp_c": _number(health.get("cpu_temp_c")),
        "spool_depth": _number(health.get("spool_depth")),
        "alarm_rate": _number(report.get("alarm_rate")),
        "last_seen_s": round(now - at, 1) if at is not None else None,
        "problems": list(view.problems),
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> int | float | None:
    """A finite number as it is; anything else (text, NaN, a bool, an int past float) None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:
        return None


def _model(value: Any) -> str | None:
    """``name version`` of a report's bundle or shadow; None without one."""
    if not isinstance(value, dict):
        return None
    return " ".join(str(value[k]) for k in ("name", "version") if value.get(k) is not None) or None
