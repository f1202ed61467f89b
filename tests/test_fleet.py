"""The fleet view: real ``pi-inspect run`` stations on one mosquitto report themselves with
retained messages, and ``pi-inspect fleet status`` lists them, the missing one and the dead."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_helpers import ERROR_BGR, OK_BGR, script, write_video

from pi_inspect.edge.fleet.report import machine_identity, station_report
from pi_inspect.edge.fleet.status import StationView


def station_config(tmp_path: Path, name: str, port: int, video: Path) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
state_dir = "{tmp_path / name}"
[device]
id = "{name}"
[source]
uri = "{video}"
loop = true
[gpio]
pin_factory = "mock"
[stdout]
enabled = false
[output]
stats_interval_s = 0.2
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
"""
    )
    return path


def fleet_status(port: int, *extra: str) -> tuple[int, list[dict]]:
    done = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "fleet", "status", "--broker",
         f"127.0.0.1:{port}", "--json", "--wait", "1.0", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return predicate()


@pytest.mark.timeout(240)
def test_fleet_status_lists_every_station_the_missing_one_and_the_dead(tmp_path, mosquitto_broker):
    port = mosquitto_broker.port
    videos = {
        "station-a": write_video(tmp_path / "a.avi", script((OK_BGR, 30))),
        "station-b": write_video(tmp_path / "b.avi", script((OK_BGR, 20), (ERROR_BGR, 10))),
        "station-c": write_video(tmp_path / "c.avi", script((OK_BGR, 30))),
    }
    inventory = tmp_path / "inventory.txt"
    inventory.write_text("# line 3\nstation-a\nstation-b\nstation-c\nstation-d  # not built yet\n")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "pi_inspect.edge.cli", "run", "--config",
             str(station_config(tmp_path, name, port, video))],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for name, video in videos.items()
    }
    try:

        def all_reporting():
            code, rows = fleet_status(port, "--inventory", str(inventory))
            ok = [r for r in rows if r["condition"] == "ok" and r["alarm_rate"] is not None]
            return (code, rows) if len(ok) == 3 else None

        code, rows = wait_for(all_reporting)
        by_name = {r["device"]: r for r in rows}
        assert code == 1  # station-d is missing
        assert by_name["station-d"]["condition"] == "missing"
        for name in videos:
            row = by_name[name]
            assert row["availability"] == "online" and row["in_inventory"]
            assert row["bundle"].startswith("seam-demo") and row["version"]
            assert row["fps"] > 0 and row["last_seen_s"] < 30
        procs["station-c"].send_signal(signal.SIGKILL)  # the broker publishes its last will
        procs["station-b"].send_signal(signal.SIGTERM)
        assert procs["station-b"].wait(30) == 0

        def settled():
            _, rows = fleet_status(port)
            conditions = {r["device"]: r["condition"] for r in rows}
            return conditions if conditions.get("station-c") == "offline" else None

        conditions = wait_for(settled)
        assert conditions == {"station-a": "ok", "station-b": "stopped", "station-c": "offline"}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_fleet_status_says_when_the_broker_cannot_be_reached(tmp_path):
    from conftest import free_loopback_port

    done = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "fleet", "status", "--broker",
         f"127.0.0.1:{free_loopback_port()}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: broker 127.0.0.1:") and "Traceback" not in done.stderr


def test_a_station_is_stale_when_online_without_a_recent_report():
    report = station_report("s", {"version": "1"}, None, None, now=1000.0)
    view = StationView("s", availability="online", report=report)
    assert view.condition(now=1030.0, stale_s=60.0) == "ok"
    assert view.condition(now=1061.0, stale_s=60.0) == "stale"
    assert StationView("s", expected=True).condition(1000.0, 60.0) == "missing"
    assert StationView("s", availability="offline", report=report).condition(1000.0, 60.0) == "offline"


def test_machine_identity_reads_the_board_and_os_where_they_are(tmp_path):
    os_release, model = tmp_path / "os-release", tmp_path / "model"
    os_release.write_text('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    found = machine_identity(os_release, (tmp_path / "absent", model))
    assert found["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert found["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    assert machine_identity(tmp_path / "none", (tmp_path / "none",))["board"] is None
