"""End to end: the real daemon (edge.daemon + its SIGTERM handling) publishing on MQTT.

The daemon runs in a child process on a looping video with known defects, its MQTT output made
by the daemon itself from the ``[mqtt]`` config. Its stdout JSON lines are the ground truth of
every defect event it produced. The broker is stopped for 20 s while defects keep occurring, the
daemon is SIGKILLed during the outage and started again, the broker comes back, the daemon gets
SIGTERM: a persistent-session subscriber must have every event (duplicates only by event id).

The model is the scripted colour classifier of the daemon tests (a model bundle is not needed to
prove delivery); everything else is the production path.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
OUTAGE_S = 20.0


class Paced:
    """Deliver a source's frames at ``fps`` so a looping file behaves like a camera."""

    def __init__(self, inner, fps: float) -> None:
        self._inner, self._period, self._next = inner, 1.0 / fps, time.monotonic()
        self.name, self.live = inner.name, inner.live

    def open(self) -> None:
        self._inner.open()

    def read(self):
        self._next += self._period
        time.sleep(max(0.0, self._next - time.monotonic()))
        return self._inner.read()

    def close(self) -> None:
        self._inner.close()


def child_main(argv: list[str]) -> int:
    from daemon_helpers import ScriptedClassifier

    from edge.config import parse_config
    from edge.daemon import Daemon
    from edge.daemon_cli import install_signal_handlers
    from edge.sources import make_source

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--video", required=True)
    args = parser.parse_args(argv)
    config = parse_config(
        {
            "state_dir": args.state_dir,
            "source": {"kind": "file", "uri": args.video, "loop": True},
            "gpio": {"enabled": False},
            "snapshots": {"enabled": False},
            "output": {"stdout": True, "stats_interval_s": 1.0},
            "mqtt": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": args.port,
                "device_id": "e2e",
                "reconnect_min_s": 1,
                "reconnect_max_s": 1,
                "discovery": {"enabled": False},
            },
        }
    )
    daemon = Daemon(
        config,
        source_factory=lambda: Paced(make_source(config.source), fps=60.0),
        classifier_loader=lambda _model: ScriptedClassifier(),
    )
    stop = threading.Event()
    install_signal_handlers(stop, daemon.request_reload)
    daemon.run(stop)
    return 0


def start_daemon(port: int, state_dir: Path, video: Path, stdout: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path])}
    cmd = [sys.executable, str(HERE), "--port", str(port), "--state-dir", str(state_dir)]
    cmd += ["--video", str(video)]
    with stdout.open("wb") as out, (stdout.with_suffix(".log")).open("wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, env=env)


def produced_events(*stdouts: Path) -> list[dict]:
    events = []
    for path in stdouts:
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a SIGKILL may cut the last line
                continue
            if record.get("type") == "event":
                events.append({k: v for k, v in record.items() if k != "type"})
    return events


def test_daemon_killed_during_a_20s_outage_delivers_every_defect_event(
    make_mosquitto, mqtt_subscribe, tmp_path: Path
):
    from daemon_helpers import BREAK_BGR, ERROR_BGR, OK_BGR, WRONG_PITCH_BGR, script, write_video

    frames = script(
        (OK_BGR, 10), (ERROR_BGR, 6), (OK_BGR, 10), (BREAK_BGR, 5), (OK_BGR, 10),
        (WRONG_PITCH_BGR, 8), (OK_BGR, 10),
    )  # fmt: skip
    video = write_video(tmp_path / "line.avi", frames)
    broker = make_mosquitto(persistence=True)
    sub = mqtt_subscribe(
        broker, ["pi-inspect/e2e/defect/#"], client_id="ground-truth", clean_session=False
    )
    state = tmp_path / "state"
    a_out, b_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first = start_daemon(broker.port, state, video, a_out)
    second = None
    try:
        assert sub.wait_for(lambda m: len(m) >= 4, timeout=30), a_out.with_suffix(
            ".log"
        ).read_text()
        broker.stop()
        outage_started = time.monotonic()
        time.sleep(OUTAGE_S / 3)  # defects keep occurring: spooled only
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = start_daemon(broker.port, state, video, b_out)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        broker.start()
        # let the restarted daemon reconnect and replay, then stop it cleanly
        during = len(produced_events(a_out, b_out))
        assert sub.wait_for(lambda m: len(m) >= during, timeout=30)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, b_out.with_suffix(".log").read_text()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    truth = produced_events(a_out, b_out)
    truth_keys = {(e["event_id"], e["kind"]) for e in truth}
    assert len(truth_keys) == len(truth) >= 3 * 2 * 5  # >= 5 loops of 3 defects, start + end
    key = lambda p: (json.loads(p)["event_id"], json.loads(p)["kind"])  # noqa: E731
    assert sub.wait_for(lambda m: {key(p) for _, p, _ in m} >= truth_keys, timeout=15), (
        f"{len(truth_keys - {key(p) for _, p, _ in sub.messages})} of {len(truth)} events missing"
    )
    received: dict[tuple[str, str], set[bytes]] = {}
    for _, payload, _ in sub.messages:
        received.setdefault(key(payload), set()).add(payload)
    assert set(received) == truth_keys  # nothing invented
    assert all(len(copies) == 1 for copies in received.values())  # a duplicate is the same event
    by_key = {(e["event_id"], e["kind"]): e for e in truth}
    assert all(json.loads(next(iter(c))) == by_key[k] for k, c in received.items())


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
