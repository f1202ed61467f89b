"""Crash safety of the MQTT output in a real child process: SIGKILL, SIGTERM, broker outage.

The child (this file run as a script) drives ``pi_inspect.edge.mqtt.make_output`` with scripted defect
events, exactly as the daemon does, and records how many it has handed over. The test kills it
during a broker outage, starts another one, brings the broker back and checks with a real
subscriber that every event id arrives.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from daemon_helpers import wait_until as _wait_until

from pi_inspect.edge.events import DefectEvent

LABELS = ("error", "break", "length")
OUTAGE_S = 20.0  # the outage the spool must ride out: the broker is down this long while defects occur
HERE = Path(__file__).resolve()
wait_until = functools.partial(_wait_until, timeout=20.0, interval=0.05)


def event_id(i: int) -> str:
    return str(uuid.UUID(int=i))


def scripted_event(i: int) -> DefectEvent:
    return DefectEvent(
        event_id=event_id(i),
        kind="start",
        label=LABELS[i % len(LABELS)],
        started_at=1_700_000_000.0 + i,
        ended_at=None,
        peak_score=0.5 + (i % 50) / 100,
        frames=1 + i % 7,
        first_frame=25 * i,
    )


# -- the child process ----------------------------------------------------------------------


def child_main(argv: list[str]) -> int:

    from pi_inspect.edge.mqtt import make_output
    from pi_inspect.edge.mqtt.config import MqttConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args(argv)

    config = MqttConfig(
        enabled=True,
        host="127.0.0.1",
        port=args.port,
        reconnect_min_s=1,
        reconnect_max_s=1,
        discovery={"enabled": False},
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(True))
    progress = args.state_dir / "progress"
    with make_output(config, args.state_dir, "harness") as out:
        for n, i in enumerate(range(args.first, args.first + args.count), start=1):
            out.publish_event(scripted_event(i))
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(str(n))
            os.replace(tmp, progress)  # the event is in the spool once this says so
            time.sleep(args.interval)
        while not stopping:
            time.sleep(0.05)
    return 0


# -- the tests ------------------------------------------------------------------------------


def start_child(port: int, state_dir: Path, first: int = 0, count: int = 0) -> subprocess.Popen:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "progress").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path])}
    log = (state_dir / "child.log").open("ab")
    cmd = [sys.executable, str(HERE), "--port", str(port), "--state-dir", str(state_dir)]
    cmd += ["--first", str(first), "--count", str(count)]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def handed_over(state_dir: Path) -> int:
    try:
        return int((state_dir / "progress").read_text())
    except (OSError, ValueError):
        return 0


def spool_rows(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "spool.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def test_sigkill_during_a_broker_outage_loses_no_event(
    make_mosquitto, mqtt_subscribe, tmp_path: Path
):
    broker = make_mosquitto(persistence=True)  # the subscriber's session survives the outage
    sub = mqtt_subscribe(
        broker, ["pi-inspect/+/defect/#"], client_id="ground-truth", clean_session=False
    )
    state = tmp_path / "state"
    first = start_child(broker.port, state, first=0, count=30)
    try:
        assert sub.wait_for(lambda m: len(m) >= 5, timeout=20)
        broker.stop()  # outage: the rest of the first child's events go to the spool only
        outage_started = time.monotonic()
        assert wait_until(lambda: handed_over(state) == 30)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_child(broker.port, state, first=30, count=20)
        assert wait_until(lambda: handed_over(state) == 20)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        broker.start()
        truth = [event_id(i) for i in range(50)]
        ids = lambda: [json.loads(p)["event_id"] for _, p, _ in sub.messages]  # noqa: E731
        assert sub.wait_for(lambda m: set(ids()) >= set(truth), timeout=30), (
            f"missing {sorted(set(truth) - set(ids()))}"
        )
        # every event exactly as the ground truth; a duplicate is a whole re-send, same id
        by_id: dict[str, set[bytes]] = {}
        for _, payload, _ in sub.messages:
            by_id.setdefault(json.loads(payload)["event_id"], set()).add(payload)
        assert sorted(by_id) == sorted(truth)
        for i, eid in enumerate(truth):
            assert [json.loads(p) for p in by_id[eid]] == [scripted_event(i).to_dict()]
        assert list(dict.fromkeys(ids())) == truth  # replayed in the original order
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
        assert spool_rows(state) == 0  # every row was acknowledged, then removed
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_subscriber_sees_offline_after_sigkill_and_stopped_after_sigterm(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    topic = "pi-inspect/harness/availability"
    sub = mqtt_subscribe(mosquitto_broker, [topic])
    killed = start_child(mosquitto_broker.port, tmp_path / "a")
    try:
        assert sub.wait_for(lambda m: sub.payloads(topic) == [b"online"], timeout=20)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert sub.wait_for(lambda m: sub.payloads(topic) == [b"online", b"offline"])
        stopped = start_child(mosquitto_broker.port, tmp_path / "b")
        assert sub.wait_for(lambda m: sub.payloads(topic)[2:] == [b"online"], timeout=20)
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(timeout=15) == 0
        assert sub.wait_for(lambda m: sub.payloads(topic)[2:] == [b"online", b"stopped"])
    finally:
        for proc in (killed, locals().get("stopped")):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
