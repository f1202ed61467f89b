"""A fleet on one mosquitto: real stations and simulated ones, a broker restart in the middle.

- ``--real`` real ``pi-inspect run`` processes (the demo bundle, a 320x240 looped seam video at
  ``--fps`` with two defects in 75 s, MQTT on, the fleet report on), each its own state dir and device id;
- ``--simulated`` MQTT clients in one child process, each publishing what a station publishes
  at its rate (availability with its last will, state, stats and the retained report every
  ``--stats-s``, a defect start and end every ``--sim-event-s`` on average, QoS 1);
- a collector with a persistent session (QoS 1, as a PLC gateway or historian would have)
  subscribed to everything under the prefix.

Phases: start and settle; a steady window (broker CPU, message rate, end-to-end event latency
from the frame's time to the collector); the broker stopped for ``--outage`` seconds and started
again (persistence on); recovery; then every event the stations say they emitted (the real ones'
JSON lines on stdout, the simulator's own log) is looked up among those the collector received:
lost = emitted and never received (by event id and kind). The real stations debounce with
``k = n = 1`` so that an event's time is its frame's time.

    python bench/fleet.py [--real 50] [--simulated 500] [--fps 2] [--measure 60] [--outage 20]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

PREFIX = "bench"
COLLECTOR_ID = "bench-fleet-collector"
# paho waits on its sockets with select(), which takes descriptors below 1024 only, and each
# client holds three: so the simulated stations are spread over processes of this many
SIM_PER_PROCESS = 150


# -- the broker ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """mosquitto with persistence (sessions and queued messages survive a restart)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        conf = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {workdir}/",
            "max_queued_messages 100000",  # per offline persistent client (default 1000)
            "max_inflight_messages 100",
            "sys_interval 2",
        ]
        if os.geteuid() == 0:
            conf.append("user root")
        (workdir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.workdir / "mosquitto.conf")], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it saves its sessions
            self.proc.wait(timeout=30)
        self.proc = None

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid) if self.proc is not None else 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):  # a process that already ended
            total += process_cpu_s(pid)
    return total


# -- the collector ---------------------------------------------------------------------------
class Collector:
    """Everything under the prefix, QoS 1, on a persistent session; defect events by (id, kind)
    with the time each first arrived."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.messages = 0
        self.by_kind: dict[str, int] = {}
        self.events: dict[tuple[str, str], tuple[float, float, str]] = {}  # -> (recv, t, device)
        self.duplicates = 0
        self.reports: set[str] = set()
        self.sys_received: float | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=COLLECTOR_ID, clean_session=False,
            protocol=mqtt.MQTTv311,
        )  # fmt: skip
        self.client.max_inflight_messages_set(100)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, _u, _f, reason, _p) -> None:
        if not reason.is_failure:
            client.subscribe([(f"{PREFIX}/#", 1), ("$SYS/broker/messages/received", 0)])

    def _on_message(self, _c, _u, message) -> None:
        now = time.time()
        if message.topic.startswith("$SYS"):
            with self.lock:
                self.sys_received = float(message.payload)
            return
        levels = message.topic.split("/")
        kind = levels[2] if len(levels) > 2 else ""
        event = None
        if kind == "defect" and message.payload:
            try:
                event = json.loads(message.payload)
            except ValueError:
                event = None
        with self.lock:
            self.messages += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if kind == "report":
                self.reports.add(levels[1])
            if isinstance(event, dict) and "event_id" in event:
                key = (event["event_id"], event["kind"])
                if key in self.events:
                    self.duplicates += 1
                else:
                    t = event.get("started_at") if event["kind"] == "start" else None
                    self.events[key] = (now, t if t is not None else now, levels[1])

    def snapshot(self) -> tuple[int, dict[tuple[str, str], tuple[float, float, str]]]:
        with self.lock:
            return self.messages, dict(self.events)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the simulated stations ------------------------------------------------------------------
def simulate(args: argparse.Namespace) -> int:
    """``--simulate N``: N station clients until SIGTERM; sent events go to ``--log``."""
    import paho.mqtt.client as mqtt

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rng = random.Random(7 + args.offset)
    clients = []
    for i in range(args.offset, args.offset + args.simulate):
        device = f"sim-{i:03d}"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pi-inspect-{device}",
            clean_session=False, protocol=mqtt.MQTTv311,
        )  # fmt: skip
        client.will_set(f"{PREFIX}/{device}/availability", "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.max_queued_messages_set(0)

        def online(c, _u, _f, reason, _p, device=device) -> None:
            if not reason.is_failure:
                c.publish(f"{PREFIX}/{device}/availability", "online", qos=1, retain=True)

        client.on_connect = online
        client.connect_async("127.0.0.1", args.port, keepalive=30)
        client.loop_start()
        clients.append((device, client))
        time.sleep(0.002)
    log = open(args.log, "w")  # noqa: SIM115 - held for the whole run
    started = time.time()
    next_stats = {d: started + rng.uniform(0, args.stats_s) for d, _ in clients}
    next_event = {d: started + rng.expovariate(1 / args.sim_event_s) for d, _ in clients}
    open_events: dict[str, tuple[str, float]] = {}
    for device, client in clients:
        state = {"verdict": "ok", "fault": None, "model": {"name": "seam-demo", "version": "1"}}
        client.publish(f"{PREFIX}/{device}/state", json.dumps(state), qos=1, retain=True)
    while not stop.wait(0.05):
        now = time.time()
        for device, client in clients:
            if now >= next_stats[device]:
                next_stats[device] += args.stats_s
                stats = {"frames": int(now - started) * 2, "fps": 2.0, "dropped": 0}
                client.publish(f"{PREFIX}/{device}/stats", json.dumps(stats), qos=0)
                report = {"schema": 1, "device": device, "at": now,
                          "identity": {"hostname": device, "version": "sim"},
                          "bundle": {"name": "seam-demo", "version": "1"},
                          "health": {"verdict": "ok", "fps": 2.0}, "alarm_rate": 0.01}  # fmt: skip
                client.publish(f"{PREFIX}/{device}/report", json.dumps(report), qos=1, retain=True)
            if device in open_events and now >= open_events[device][1]:
                event_id, _ = open_events.pop(device)
                body = {"event_id": event_id, "kind": "end", "label": "error", "ended_at": now}
                client.publish(f"{PREFIX}/{device}/defect/error", json.dumps(body), qos=1)
                log.write(json.dumps({"device": device, "event_id": event_id, "kind": "end",
                                      "t": now}) + "\n")  # fmt: skip
            elif device not in open_events and now >= next_event[device]:
                next_event[device] = now + rng.expovariate(1 / args.sim_event_s)
                event_id = str(uuid.uuid4())
                open_events[device] = (event_id, now + rng.uniform(0.5, 3.0))
                body = {"event_id": event_id, "kind": "start", "label": "error",
                        "started_at": now, "peak_score": 0.9}  # fmt: skip
                client.publish(f"{PREFIX}/{device}/defect/error", json.dumps(body), qos=1)
                log.write(json.dumps({"device": device, "event_id": event_id, "kind": "start",
                                      "t": now}) + "\n")  # fmt: skip
        log.flush()
    deadline = time.monotonic() + 30  # let what is queued go out
    while time.monotonic() < deadline and any(c.want_write() for _, c in clients):
        time.sleep(0.2)
    for _, client in clients:
        client.disconnect()
        client.loop_stop()
    log.close()
    return 0


# -- the real stations -----------------------------------------------------------------------
def station_config(root: Path, name: str, port: int, video: Path, fps: float) -> Path:
    from pi_inspect.edge.bundle import default_bundle_dir

    folder = root / name
    folder.mkdir(parents=True)
    text = f"""state_dir = "{folder / "state"}"

[device]
id = "{name}"

[model]
bundle = "{default_bundle_dir()}"

[source]
uri = "{video}"
loop = true
fps = {fps}

[decide]
k = 1
n = 1
m = 1

[gpio]
pin_factory = "mock"

[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
prefix = "{PREFIX}"
"""
    path = folder / "config.toml"
    path.write_text(text)
    return path


def emitted_events(stdout: Path, device: str) -> list[tuple[str, str, float, str]]:
    """(event id, kind, time, device) of every event a real station printed."""
    found = []
    for line in stdout.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("type") == "event":
            t = record.get("started_at") if record["kind"] == "start" else record.get("ended_at")
            found.append((record["event_id"], record["kind"], float(t or 0), device))
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=int, default=50)
    parser.add_argument("--simulated", type=int, default=500)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--stats-s", type=float, default=10.0, help="stations' stats interval")
    parser.add_argument("--sim-event-s", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--measure", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=20.0)
    parser.add_argument("--recover", type=float, default=60.0)
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds between starts")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--simulate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate is not None:
        return simulate(args)

    from pi_inspect.edge.synth import render_video

    work = Path(tempfile.mkdtemp(prefix="pi-inspect-fleet-bench-"))
    broker = Broker(work)
    broker.start()
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    sims: list[subprocess.Popen] = []
    collector = None
    try:
        video = render_video(work / "seam.mp4", frames=150, seed=5, size=(320, 240), fps=args.fps)
        collector = Collector(broker.port)
        for offset in range(0, args.simulated, SIM_PER_PROCESS):
            count = min(SIM_PER_PROCESS, args.simulated - offset)
            sims.append(subprocess.Popen(
                [sys.executable, __file__, "--simulate", str(count), "--offset", str(offset),
                 "--port", str(broker.port), "--log", str(work / f"sim-{offset}.jsonl"),
                 "--stats-s", str(args.stats_s), "--sim-event-s", str(args.sim_event_s)],
            ))  # fmt: skip
        t0 = time.monotonic()
        for i in range(args.real):
            name = f"real-{i:03d}"
            config = station_config(work / "stations", name, broker.port, video.path, args.fps)
            out = work / "stations" / name / "stdout.jsonl"
            with out.open("wb") as stream:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "pi_inspect.edge.cli", "run", "--config", str(config)],
                    stdout=stream, stderr=subprocess.STDOUT,
                )
            procs.append((name, proc, out))
            time.sleep(args.stagger)  # 50 Python starts at once would starve everything else
        want = args.real + args.simulated
        deadline = time.monotonic() + 600
        while len(collector.reports) < want and time.monotonic() < deadline:
            time.sleep(1)
        started_s = time.monotonic() - t0
        reporting = len(collector.reports)
        print(f"{len(collector.reports)} of {want} stations reporting after {started_s:.0f} s",
              flush=True)  # fmt: skip
        time.sleep(args.settle)

        # the steady window
        pids = [p.pid for _, p, _ in procs]
        cpu0, sta0, sim0 = broker.cpu_s(), children_cpu_s(pids), children_cpu_s([p.pid for p in sims])
        msgs0, events0 = collector.snapshot()
        sys0 = collector.sys_received
        w0 = time.monotonic()
        time.sleep(args.measure)
        window = time.monotonic() - w0
        cpu1, sta1, sim1 = broker.cpu_s(), children_cpu_s(pids), children_cpu_s([p.pid for p in sims])
        msgs1, events1 = collector.snapshot()
        sys1 = collector.sys_received
        load = os.getloadavg()
        new = {k: v for k, v in events1.items() if k not in events0 and k[1] == "start"}
        real_lat = [1000 * (recv - t) for recv, t, dev in new.values() if dev.startswith("real-")]
        sim_lat = [1000 * (recv - t) for recv, t, dev in new.values() if dev.startswith("sim-")]

        # the broker away for --outage seconds
        print(f"stopping the broker for {args.outage:g} s", flush=True)
        outage_at = time.time()
        broker.stop()
        time.sleep(args.outage)
        broker.start()
        back_at = time.time()
        time.sleep(args.recover)
        cut = time.time() - 15.0  # events older than this must all have arrived
        died = [name for name, proc, _ in procs if proc.poll() is not None]  # before the end
        for _, proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for sim in sims:
            sim.send_signal(signal.SIGTERM)
        for _, proc, _ in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sim in sims:
            sim.wait(timeout=120)
        time.sleep(2)
        _, received = collector.snapshot()

        emitted, silent = [], []
        for name, _, out in procs:
            found = emitted_events(out, name)
            emitted += found
            if not found:
                silent.append(name)
        real_emitted = len(emitted)
        for sim_log in sorted(work.glob("sim-*.jsonl")):
            for line in sim_log.read_text().splitlines():
                item = json.loads(line)
                emitted.append((item["event_id"], item["kind"], item["t"], item["device"]))
        due = [e for e in emitted if e[2] < cut]
        lost = [e for e in due if (e[0], e[1]) not in received]
        in_outage = [e for e in due if outage_at <= e[2] <= back_at]
        late = [
            received[(e[0], e[1])][0] - back_at
            for e in in_outage if (e[0], e[1]) in received
        ]  # fmt: skip
        result = {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "real": args.real,
            "simulated": args.simulated,
            "fps": args.fps,
            "stations_up_s": round(started_s, 1),
            "stations_reporting": reporting,
            "real_stations_died": died,
            "real_stations_without_events": silent,
            "window_s": round(window, 1),
            "load_1min": round(load[0], 2),
            "broker_cpu_pct": round(100 * (cpu1 - cpu0) / window, 2),
            "stations_cpu_pct": round(100 * (sta1 - sta0) / window, 1),
            "simulator_cpu_pct": round(100 * (sim1 - sim0) / window, 1),
            "collector_msgs_per_s": round((msgs1 - msgs0) / window, 1),
            "broker_received_per_s": (
                round((sys1 - sys0) / window, 1) if sys0 is not None and sys1 is not None else None
            ),
            "real_event_latency_ms": _spread(real_lat),
            "sim_event_latency_ms": _spread(sim_lat),
            "events_emitted_real": real_emitted,
            "events_emitted_simulated": len(emitted) - real_emitted,
            "events_due": len(due),
            "events_during_outage": len(in_outage),
            "events_lost": len(lost),
            "duplicates": collector.duplicates,
            "outage_events_s_after_restart": _spread(late, 2),
            "lost_sample": lost[:5],
        }
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        complete = reporting == want and not died and not silent
        if not complete:
            print("the run is incomplete: a station did not report, died or emitted nothing")
        return 0 if not lost and complete else 1
    finally:
        if collector is not None:
            collector.close()
        for _, proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
        for sim in sims:
            if sim.poll() is None:
                sim.kill()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def _spread(values: list[float], digits: int = 1) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p99": round(percentile(values, 99), digits),
        "max": round(max(values), digits),
    }


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
