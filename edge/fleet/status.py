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
    "rollout_lines",
    "rows",
    "with_inventory",
]

CONNECT_TIMEOUT_S = 10.0


class BrokerUnreachable(PiInspectError, ConnectionError):
    """The broker did not accept the connection."""

    exit_code = 2


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
) -> tuple[dict[str, StationView], dict[str, Any] | None]:
    """Every station the broker holds a report or availability for under ``prefix``, and the
    inventory's, after listening ``wait_s``, with the rollout record (or None); raises
    ``BrokerUnreachable`` when the broker cannot be reached or refuses the connection."""
    with FleetWatch(host, port, prefix, username, password) as watch:
        if not watch.wait_connected(CONNECT_TIMEOUT_S):
            raise BrokerUnreachable(f"broker {host}:{port} {watch.error or 'refused: no answer'}")
        time.sleep(wait_s)
        views, record = watch.views(), watch.rollout()
    return with_inventory(views, inventory), record


def rollout_lines(record: dict[str, Any] | None, now: float, last: int = 5) -> list[str]:
    """What ``fleet status`` prints of the rollout record: where it stands, its newest steps."""
    if record is None:
        return []
    bundle = record.get("bundle") or {}
    head = (
        f"rollout {record.get('id')}: {bundle.get('name')} {str(bundle.get('sha256'))[:12]}, "
        f"{record.get('state')}, ring {record.get('ring')} of {len(record.get('sizes') or [])}, "
        f"{record.get('done')} of {len(record.get('stations') or [])} stations done"
    )
    if record.get("state") in ("running", "interrupted") and record.get("step"):
        head += f", step {record['step']}"
    updated = _number(record.get("updated"))
    if updated is not None:
        head += f" (updated {max(0.0, now - updated):.0f} s ago)"
    steps = [
        f"  {time.strftime('%H:%M:%S', time.localtime(item['at']))} {item['line']}"
        for item in (record.get("log") or [])[-last:]
        if isinstance(item, dict) and _number(item.get("at")) is not None
    ]
    return [head, *steps]


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
        "desired": _desired(report.get("desired")),
        "last_seen_s": round(now - at, 1) if at is not None else None,
        "problems": list(view.problems),
    }


def _desired(value: Any) -> dict[str, Any] | None:
    """The station's last desired state and its outcome: rollout, mode, state, reason."""
    if not isinstance(value, dict):
        return None
    return {k: _text(value.get(k)) for k in ("rollout", "mode", "state", "reason")}


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
