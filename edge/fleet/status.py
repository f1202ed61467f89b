"""What the workstation sees of the fleet: every station's retained report and availability on
the broker, against an inventory of the stations that should be there.

``collect`` listens for ``wait_s`` (retained messages arrive at once) and returns one
``StationView`` per device; ``condition`` decides what a station's row says. paho is imported
only when collecting, so ``pi-inspect fleet --help`` stays cheap.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.fleet.report import SCHEMA


class BrokerUnreachable(PiInspectError, ConnectionError):
    """The broker did not accept the connection."""


@dataclass
class StationView:
    device: str
    availability: str | None = None  # online, offline (its last will), stopped; None: unknown
    report: dict[str, Any] | None = None
    expected: bool = False  # named in the inventory
    problems: list[str] = field(default_factory=list)  # reports that could not be read

    def condition(self, now: float, stale_s: float) -> str:
        """``ok``, ``fault``, ``stale`` (no report for ``stale_s`` while online), ``offline``,
        ``stopped``, ``missing`` (in the inventory, never seen) or ``unknown``."""
        if self.report is None and self.availability is None:
            return "missing" if self.expected else "unknown"
        if self.availability in ("offline", "stopped"):
            return self.availability
        if self.report is None:
            return "unknown"
        if now - float(self.report.get("at") or 0) > stale_s:
            return "stale"
        health = self.report.get("health") or {}
        return "fault" if health.get("verdict") == "fault" else "ok"


def read_inventory(path: Path) -> list[str]:
    """Device ids, one a line; blank lines and ``#`` comments are skipped."""
    devices = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            devices.append(name)
    return devices


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
    inventory's; raises ``BrokerUnreachable`` when the broker cannot be reached."""
    import paho.mqtt.client as mqtt

    views = {name: StationView(name, expected=True) for name in inventory}
    lock, connected, failed = threading.Lock(), threading.Event(), []
    depth = len(prefix.split("/"))

    def on_connect(client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            failed.append(str(reason_code))
        else:
            client.subscribe([(f"{prefix}/+/report", 1), (f"{prefix}/+/availability", 1)])
        connected.set()

    def on_message(_client, _userdata, message) -> None:
        levels = message.topic.split("/")
        device, kind = levels[depth], levels[depth + 1]
        with lock:
            view = views.setdefault(device, StationView(device))
            if kind == "availability":
                view.availability = message.payload.decode(errors="replace") or None
                return
            try:
                report = json.loads(message.payload)
            except ValueError:
                view.problems.append("report is not JSON")
                return
            if not isinstance(report, dict) or report.get("schema") != SCHEMA:
                view.problems.append(
                    f"report schema {report.get('schema') if isinstance(report, dict) else '?'} (this tool reads {SCHEMA})"
                )  # noqa: E501
                return
            view.report = report

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"pi-inspect-fleet-{time.time_ns()}"
    )
    if username:
        client.username_pw_set(username, password)
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise BrokerUnreachable(f"broker {host}:{port} not reachable: {exc}") from None
    client.loop_start()
    try:
        if not connected.wait(10.0) or failed:
            raise BrokerUnreachable(
                f"broker {host}:{port} refused: {failed[0] if failed else 'no answer'}"
            )
        time.sleep(wait_s)
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return dict(sorted(views.items()))
