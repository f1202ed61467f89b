"""Storage faults end to end: a real daemon process, a real mosquitto, real filesystems.

The child (this file run as a script) is the daemon as ``pi-inspect run`` builds it from a
config file -- stdout JSON lines, the MQTT output with its spool in ``state_dir``, snapshots --
with two parts injected so defects are frequent and cheap: a looping camera whose noisy frames
(large JPEGs: high snapshot volume) alternate clean and defective runs, and the scripted
classifier that reads the defect from the frame colour (tests/daemon_helpers.py).

The daemon's stdout is the ground truth: every event printed there must reach a subscriber
once the broker is reachable, whatever the disk does. Mounts need root; elsewhere these skip.
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

import numpy as np
from daemon_helpers import ERROR_BGR, OK_BGR, wait_until

HERE = Path(__file__).resolve()
DEVICE = "storage"
DEFECTS = f"pi-inspect/{DEVICE}/defect/#"
STATE = f"pi-inspect/{DEVICE}/state"
STATS = f"pi-inspect/{DEVICE}/stats"


# -- the child process ----------------------------------------------------------------------


class NoisyLoopingCamera:
    """A live camera at ``fps``: ``clean`` frames, then ``defect`` frames with the error colour,
    forever. Every frame carries strong noise so each snapshot JPEG is tens of kB."""

    live = True
    name = "noisy looping camera"

    def __init__(self, fps: float, clean: int, defect: int, size=(320, 240)) -> None:
        self._period = 1.0 / fps
        self._cycle = [OK_BGR] * clean + [ERROR_BGR] * defect
        self._rng = np.random.default_rng(0)
        w, h = size
        self._noise = [self._rng.integers(-40, 41, (h, w, 3), dtype=np.int16) for _ in range(8)]
        self._index = 0
        self._due = 0.0

    def open(self) -> None:
        self._due = time.monotonic()

    def read(self):
        from pi_inspect.edge.sources import Frame

        self._due += self._period
        time.sleep(max(0.0, self._due - time.monotonic()))
        colour = np.array(self._cycle[self._index % len(self._cycle)], np.int16)
        noise = self._noise[self._index % len(self._noise)]
        image = np.clip(colour + noise, 0, 255).astype(np.uint8)
        frame = Frame(self._index, time.time(), image)
        self._index += 1
        return frame

    def close(self) -> None:
        pass


def child_main(argv: list[str]) -> int:
    import logging

    from daemon_helpers import ScriptedClassifier

    from pi_inspect.edge.config import load_config
    from pi_inspect.edge.daemon import Daemon

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--fps", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    daemon = Daemon(
        load_config(args.config),
        source_factory=lambda: NoisyLoopingCamera(args.fps, clean=12, defect=8),
        classifier_loader=lambda _model: ScriptedClassifier(),
    )
    daemon.run(stop)
    return 0


# -- helpers --------------------------------------------------------------------------------


def write_config(
    path: Path, state_dir: Path, port: int, *, min_free_bytes: int = 0, snapshots: bool = True
) -> Path:
    path.write_text(
        f"""
state_dir = "{state_dir}"

[pipeline]
drop = "block"

[gpio]
enabled = false

[snapshots]
enabled = {str(snapshots).lower()}
max_count = 100000
max_bytes = 1000000000
min_free_bytes = {min_free_bytes}

[stdout]
enabled = true

[output]
stats_interval_s = 0.5

[device]
id = "{DEVICE}"

[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
reconnect_min_s = 1
reconnect_max_s = 1

[mqtt.discovery]
enabled = false
"""
    )
    return path


class Child:
    """The daemon child: its stdout records and stderr log lines, read as they grow."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.out = workdir / "daemon.jsonl"
        self.err = workdir / "daemon.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), *sys.path])}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE), "--config", str(config)],
                stdout=out,
                stderr=err,
                env=env,
                cwd=workdir,
            )

    def records(self, kind: str) -> list[dict]:
        found = []
        for line in self.out.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if record.get("type") == kind:
                found.append({k: v for k, v in record.items() if k != "type"})
        return found

    def log(self) -> str:
        return self.err.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def key(event: dict) -> tuple[str, str]:
    return event["event_id"], event["kind"]


def received(sub) -> set[tuple[str, str]]:
    return {key(json.loads(p)) for t, p, _ in list(sub.messages) if "/defect/" in t}


def last_json(sub, topic: str) -> dict | None:
    payloads = sub.payloads(topic)
    return json.loads(payloads[-1]) if payloads else None


def temporary_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


# -- the tests ------------------------------------------------------------------------------


def test_a_full_two_megabyte_state_dir_for_60_s_keeps_inspecting_and_publishing(
    make_tmpfs, mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    fs = make_tmpfs("2m")
    sub = mqtt_subscribe(mosquitto_broker, [DEFECTS, STATE, STATS])
    config = write_config(tmp_path / "c.toml", fs.path, mosquitto_broker.port, min_free_bytes=0)
    child = Child(config, tmp_path)
    try:
        assert wait_until(lambda: len(child.records("event")) >= 2, timeout=60), child.log()
        deadline = time.monotonic() + 60.0
        counts = []
        while time.monotonic() < deadline:
            assert child.alive(), child.log()[-3000:]
            counts.append(len(child.records("event")))
            time.sleep(5.0)
        assert counts[-1] > counts[len(counts) // 2] > counts[0]  # events kept coming
        assert temporary_files(fs.path) == []
        faults = " ".join(s["fault"] or "" for s in child.records("state"))
        assert "snapshots stopped: disk full" in faults, faults  # the disk really filled up
        assert fs.free_bytes() < 512 * 1024
        printed = {key(e) for e in child.records("event")}
        assert sub.wait_for(lambda m: printed <= received(sub), timeout=30), (
            f"{len(printed - received(sub))} of {len(printed)} printed events not received"
        )
        stats = child.records("stats")[-1]
        assert stats["extra"]["mqtt_connected"] is True
        assert last_json(sub, STATS) is not None
    finally:
        code = child.stop()
    assert code == 0, child.log()[-3000:]
    assert temporary_files(fs.path) == []
    assert "Traceback" not in child.log()


def test_a_garbage_spool_at_start_is_moved_aside_and_events_arrive(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    state = tmp_path / "state"
    state.mkdir()
    garbage = os.urandom(64 * 1024)
    (state / "spool.sqlite3").write_bytes(garbage)
    sub = mqtt_subscribe(mosquitto_broker, [DEFECTS])
    config = write_config(tmp_path / "c.toml", state, mosquitto_broker.port, snapshots=False)
    child = Child(config, tmp_path)
    try:
        assert wait_until(lambda: len(child.records("event")) >= 4, timeout=60), child.log()
        printed = {key(e) for e in child.records("event")}
        assert sub.wait_for(lambda m: printed <= received(sub), timeout=20), child.log()
        kept = list(state.glob("spool.sqlite3.corrupt-*"))
        assert [p.read_bytes() for p in kept] == [garbage]  # kept for inspection, as it was
        assert f"kept it as {kept[0].name}" in child.log()
    finally:
        code = child.stop()
    assert code == 0 and "Traceback" not in child.log(), child.log()[-3000:]


def test_a_read_only_state_dir_runs_with_a_memory_spool_and_shows_the_fault(
    make_tmpfs, mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    fs = make_tmpfs("2m")
    fs.read_only()
    sub = mqtt_subscribe(mosquitto_broker, [DEFECTS, STATE])
    config = write_config(tmp_path / "c.toml", fs.path / "state", mosquitto_broker.port)
    child = Child(config, tmp_path)
    try:
        assert wait_until(lambda: len(child.records("event")) >= 4, timeout=60), child.log()
        printed = {key(e) for e in child.records("event")}
        assert sub.wait_for(lambda m: printed <= received(sub), timeout=20), child.log()
        state = last_json(sub, STATE)
        assert state["verdict"] in ("fault", "defect") or state["fault"], state
        faults = [s["fault"] for s in child.records("state") if s["fault"]]
        assert any("Read-only file system" in f and "spool" in f for f in faults), faults
        log = child.log()
        assert log.count("fault: MQTT spool") == 1, log  # one line when it starts
    finally:
        code = child.stop()
    assert code == 0 and "Traceback" not in child.log(), child.log()[-3000:]


def test_disk_full_at_run_time_keeps_events_in_memory_and_counts_them_until_space_returns(
    make_tmpfs, make_mosquitto, mqtt_subscribe, tmp_path: Path
):
    fs = make_tmpfs("4m")
    # the subscriber's session survives the broker's restart: events the daemon sends while
    # the subscriber is still reconnecting wait for it instead of being lost to the test
    mosquitto_broker = make_mosquitto(persistence=True)
    sub = mqtt_subscribe(mosquitto_broker, [DEFECTS], client_id="truth", clean_session=False)
    config = write_config(tmp_path / "c.toml", fs.path, mosquitto_broker.port, snapshots=False)
    child = Child(config, tmp_path)
    try:
        assert wait_until(lambda: len(child.records("event")) >= 2, timeout=60), child.log()
        filler = fs.fill()
        mosquitto_broker.stop()  # nothing is acknowledged: events pile up where they can
        # the first stats line may not be out yet: poll until it is
        unpersisted = lambda: ([{"extra": {}}] + child.records("stats"))[-1]["extra"].get("spool_unpersisted", 0)  # noqa: E731
        assert wait_until(lambda: unpersisted() >= 3, timeout=30), child.log()[-3000:]
        assert "database or disk is full" in child.log()
        mosquitto_broker.start()
        printed = {key(e) for e in child.records("event")}
        assert sub.wait_for(lambda m: printed <= received(sub), timeout=30), child.log()[-3000:]
        filler.unlink()
        assert wait_until(lambda: "fault cleared: MQTT spool" in child.log(), timeout=30)
        assert wait_until(lambda: unpersisted() == 0, timeout=10)
        assert child.log().count("fault: MQTT spool") == 1
    finally:
        code = child.stop()
    assert code == 0 and "Traceback" not in child.log(), child.log()[-3000:]


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
