"""The station report: one retained MQTT message per station that says who it is, what it
runs and how it is (``<prefix>/<device>/report``, schema 1, docs/fleet.md).

Built from what the MQTT output already receives (the last state and stats line) and what the
machine says about itself, read once; pure apart from ``machine_identity``.
"""

from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import Any

from pi_inspect.edge.events import State, Stats

SCHEMA = 1
MODEL_FILES = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))
OS_RELEASE = Path("/etc/os-release")


def machine_identity(
    os_release: Path = OS_RELEASE, model_files: tuple[Path, ...] = MODEL_FILES
) -> dict[str, str | None]:
    """Host name, operating system and board (a Raspberry Pi's model line, None elsewhere)."""
    os_name = None
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    board = None
    for path in model_files:
        try:
            board = path.read_bytes().rstrip(b"\0").decode(errors="replace").strip() or None
        except OSError:
            continue
        break
    return {
        "hostname": socket.gethostname(),
        "os": os_name or f"{platform.system()} {platform.release()}",
        "board": board,
        "python": platform.python_version(),
    }


def station_report(
    device: str,
    identity: dict[str, Any],
    state: State | None,
    stats: Stats | None,
    now: float,
) -> dict[str, Any]:
    """The report's payload. ``identity``: ``machine_identity()`` plus ``version`` and
    ``camera``; ``now``: unix time, the station's "last seen"."""
    model = state.model if state is not None else None
    extra = stats.extra if stats is not None else {}
    shadow = extra.get("shadow") or {}
    candidate = shadow.get("candidate") if isinstance(shadow, dict) else None
    return {
        "schema": SCHEMA,
        "device": device,
        "at": round(now, 3),
        "identity": dict(identity),
        "bundle": (
            {"name": model.name, "version": model.version, "sha256": model.sha256}
            if model is not None
            else None
        ),
        "shadow": (
            {
                "name": candidate.get("name"),
                "version": candidate.get("version"),
                "identity": candidate.get("identity"),
                "frames": shadow.get("frames"),
                "agreement": shadow.get("agreement"),
                "service_alarm_rate": shadow.get("service_alarm_rate"),
                "candidate_alarm_rate": shadow.get("candidate_alarm_rate"),
            }
            if isinstance(candidate, dict)
            else None
        ),  # fmt: skip
        "health": {
            "verdict": state.verdict if state is not None else "starting",
            "fault": state.fault if state is not None else None,
            "fps": stats.fps if stats is not None else None,
            "camera_online": stats.camera_online if stats is not None else None,
            "spool_depth": extra.get("spool_depth"),
            "cpu_temp_c": stats.cpu_temp_c if stats is not None else None,
            "uptime_s": stats.uptime_s if stats is not None else None,
        },
        "alarm_rate": extra.get("alarm_rate"),
        "desired": extra.get("desired"),  # the fleet's last desired state and its outcome
    }
