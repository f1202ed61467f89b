"""Trigger to result: how long a part waits for its verdict, from the PLC's side of the wire.

A real daemon (the demo bundle, int8 on LiteRT, 1 interpreter thread) watches a paced live
camera (640x480 frames at ``--fps``) in trigger mode with the PLC servers on loopback. Three
kinds of PLC trigger parts at 1, 10 and 30 parts per second:

- ``modbus``: a pymodbus client writes the part ID and pulses the trigger coil; a second client
  polls the status word every millisecond, reads the result block when ``result_valid`` is set
  and pulses ``results_ack`` (coils, so the two clients never overwrite each other's bits);
- ``opcua``: an asyncua client calls the station's ``Trigger`` method with the part ID and
  polls ``Status/ResultValid`` and the result, acknowledging with ``Control/ResultsAck``;
- ``gpio``: gpiozero's MockFactory drives the trigger input low (a sensor or a PLC output wired
  to the Pi) and the result is taken where the station hands it to its outputs.

Each part's time runs from just before the trigger is sent to the moment the client sees its
result (matched by the echoed part ID), beside the daemon's own processing time for it. Parts
that came back ``missed`` or late are counted. ``--check`` runs a few parts per kind and rate
with no timing claims (what the emulated Pi check runs).

    python bench/trigger_latency.py [--fps 30] [--seconds 20] [--kinds modbus,opcua,gpio]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import KeptOpen  # noqa: E402 - shared with the other benches
from real_data import cpu_name  # noqa: E402

TRIGGER_PIN = 5


class PacedCamera:
    """A live 640x480 source at ``fps``: frames come when a camera would give them."""

    live = True
    name = "paced camera"

    def __init__(self, fps: float) -> None:
        rng = np.random.default_rng(0)
        self._image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        self._period = 1.0 / fps
        self._next = 0.0
        self._index = 0

    def open(self) -> None:
        self._next = time.monotonic()

    def read(self):
        from pi_inspect.edge.sources import Frame

        self._next += self._period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self._next = time.monotonic()  # behind: no burst of catch-up frames
        self._index += 1
        return Frame(self._index, time.time(), self._image)

    def close(self) -> None:
        pass


class Seen:
    """Part results as the station hands them to its outputs (the GPIO arm's result side and
    every arm's processing time, missed and late counts)."""

    def __init__(self) -> None:
        self.parts: dict[int, Any] = {}  # by part ID (the PLC arms)
        self.gpio: list[tuple[Any, float]] = []  # (result, when), in order (the GPIO arm)
        self._lock = threading.Lock()

    def publish_part(self, result) -> None:
        now = time.perf_counter()
        with self._lock:
            if result.part_id is not None:
                self.parts[result.part_id] = result
            else:
                self.gpio.append((result, now))

    def publish_event(self, event) -> None: ...

    def publish_result(self, result) -> None: ...

    def publish_stats(self, stats) -> None: ...

    def publish_state(self, state) -> None: ...

    def publish_snapshot(self, jpeg, event) -> None: ...

    def close(self) -> None: ...


def station(clf, fps: float, pins, seen: Seen, kinds: set[str]):
    """The daemon and its PLC output (the servers ``kinds`` name, on free loopback ports;
    None when only the GPIO arm runs, which needs neither pymodbus nor asyncua)."""
    from pi_inspect.edge.config import output_context, parse_config
    from pi_inspect.edge.daemon import Daemon
    from pi_inspect.edge.outputs.registry import plugins

    settings = {
        "source": {"uri": "0"},
        "trigger": {"mode": "gpio", "pin": TRIGGER_PIN, "bounce_s": 0.0, "max_pending": 256},
        "gpio": {"pin_factory": "mock"},
        "snapshots": {"enabled": False},
        "stdout": {"enabled": False},
        "plc": {
            "enabled": bool(kinds & {"modbus", "opcua"}),
            "buffer_depth": 64,
            "modbus": {"enabled": "modbus" in kinds, "port": 0},
            "opcua": {"enabled": "opcua" in kinds, "port": 0},
        },
    }
    config = parse_config(settings)
    plc = plugins()["plc"].build(config.plc, output_context(config)) if config.plc.enabled else None
    kept = KeptOpen(clf)
    daemon = Daemon(
        config, source=PacedCamera(fps), outputs=[o for o in (plc, seen) if o], pin_factory=pins,
        classifier_loader=lambda _m: kept,
    )  # fmt: skip
    return daemon, plc


# -- the PLC's side ---------------------------------------------------------------------------
def modbus_arm(plc, times: list[float], first_id: int, seen: Seen) -> dict[int, float]:
    """Trigger parts at ``times`` over Modbus; part ID -> seconds to result."""
    from pymodbus.client import ModbusTcpClient

    host, port = plc.server("modbus").address
    trig, poll = ModbusTcpClient(host, port=port), ModbusTcpClient(host, port=port)
    trig.connect()
    poll.connect()
    trig.write_coils(0, [True, False, False, False, True])  # enable + buffer_enable
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    done = threading.Event()

    def poller() -> None:
        while not (done.is_set() and len(got) >= len(sent)):
            regs = poll.read_holding_registers(8, count=12).registers
            if regs[0] >> 3 & 1:  # result_valid
                block = poll.read_holding_registers(16, count=4).registers
                part_id = block[2] << 16 | block[3]
                got.setdefault(part_id, time.perf_counter())
                poll.write_coil(2, True)  # results_ack: next one
                poll.write_coil(2, False)
            else:
                time.sleep(0.001)
            if done.is_set() and time.perf_counter() - last[0] > 5.0:
                break

    last = [time.perf_counter()]
    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    start = time.perf_counter()
    for i, at in enumerate(times):
        _wait_until(start + at)
        part_id = first_id + i
        trig.write_registers(1, [part_id >> 16, part_id & 0xFFFF])
        sent[part_id] = time.perf_counter()
        trig.write_coil(1, True)
        trig.write_coil(1, False)
        last[0] = time.perf_counter()
    done.set()
    thread.join(30)
    trig.close()
    poll.close()
    return {p: got[p] - t for p, t in sent.items() if p in got}


def opcua_arm(plc, times: list[float], first_id: int, seen: Seen) -> dict[int, float]:
    """Trigger parts at ``times`` over OPC UA; part ID -> seconds to result."""
    from opcua_client import run_opcua  # bench/opcua_client.py: the asyncua side

    host, port = plc.server("opcua").address
    return run_opcua(host, port, times, first_id)


def gpio_arm(pins, times: list[float], first_id: int, seen: Seen) -> dict[int, float]:
    """Parts from the trigger input; results where the station hands them out. The part ID is
    not on the wire here: parts are matched in order (acquisition IDs count up)."""
    pin = pins.pin(TRIGGER_PIN)
    base = len(seen.gpio)
    sent: list[float] = []
    count = len(times)
    start = time.perf_counter()
    for at in times:
        _wait_until(start + at)
        sent.append(time.perf_counter())
        pin.drive_low()
        time.sleep(0.0005)
        pin.drive_high()
    deadline = time.perf_counter() + 10
    while len(seen.gpio) < base + count and time.perf_counter() < deadline:
        time.sleep(0.01)
    ordered = sorted(seen.gpio[base:], key=lambda item: item[0].acq_id)
    return {first_id + i: at - sent[i] for i, (_, at) in enumerate(ordered)}


def schedule(rate: float, count: int, fps: float, seed: int) -> list[float]:
    """When each part is triggered, in seconds from the start: ``rate`` per second, each moved
    by a seeded random fraction of a frame period, so the parts' phase against the camera's
    frames varies as on a line (at a rate that divides the fps it would otherwise be fixed)."""
    rng = np.random.default_rng(seed)
    return [i / rate + float(rng.uniform(0.0, 1.0 / fps)) for i in range(count)]


def _wait_until(t: float) -> None:
    while (left := t - time.perf_counter()) > 0:
        time.sleep(min(left, 0.002))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def main() -> int:
    from gpiozero.pins.mock import MockFactory

    from pi_inspect.edge.runtime import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="per kind and rate")
    parser.add_argument("--rates", default="1,10,30")
    parser.add_argument("--kinds", default="modbus,opcua,gpio")
    parser.add_argument("--check", action="store_true", help="3 parts per arm, no timing")
    args = parser.parse_args()
    clf = load_classifier(None, num_threads=1)
    pins = MockFactory()
    pins.pin(TRIGGER_PIN).drive_high()  # the input idles high (pull-up), a part pulls it low
    seen = Seen()
    kinds = args.kinds.split(",")
    daemon, plc = station(clf, args.fps, pins, seen, set(kinds))
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    runner.start()
    time.sleep(2.0)  # the camera opens, the model loads
    period_ms = 1000.0 / args.fps
    arms = {"modbus": modbus_arm, "opcua": opcua_arm, "gpio": gpio_arm}
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f} at start")
    print(f"camera {args.fps:g} fps (frame period {period_ms:.1f} ms), demo bundle int8, 1 thread")
    print("kind    rate  parts  p50 ms  p99 ms  max ms  proc p50  proc p99  missed  late  lost")
    first_id, failures = 1, 0
    for kind in kinds:
        for rate in (float(x) for x in args.rates.split(",")):
            count = 3 if args.check else max(3, int(rate * args.seconds))
            target = pins if kind == "gpio" else plc
            times = schedule(rate, count, args.fps, seed=first_id)
            waits = arms[kind](target, times, first_id, seen)
            time.sleep(0.3)
            ids = range(first_id, first_id + count)
            first_id += count
            if kind == "gpio":
                results = [r for r, _ in seen.gpio[-count:]]
            else:
                results = [seen.parts[i] for i in ids if i in seen.parts]
            ms = [1000.0 * w for w in waits.values()]
            proc = [r.processing_ms for r in results]
            missed = sum(r.code == "missed" for r in results)
            late = sum(r.late for r in results)
            lost = count - len(waits)
            failures += lost + missed
            if args.check:
                print(f"{kind:6} {rate:5g}  {count:5d}  results {len(waits)}/{count}, "
                      f"missed {missed}, lost {lost}")  # fmt: skip
                continue
            print(f"{kind:6} {rate:5g}  {count:5d}  {pct(ms, .5):6.1f}  {pct(ms, .99):6.1f}  "
                  f"{max(ms, default=0):6.1f}  {pct(proc, .5):8.1f}  {pct(proc, .99):8.1f}  "
                  f"{missed:6d}  {late:4d}  {lost:4d}")  # fmt: skip
            if rate == 10 and not args.check:
                bar = 2 * period_ms + pct(proc, 0.99)
                verdict = "met" if pct(ms, 0.99) <= bar else "NOT met"
                print(f"        bar at 10/s: p99 <= 2 frame periods + p99 processing = "
                      f"{bar:.1f} ms: {verdict}")  # fmt: skip
    stop.set()
    runner.join(15)
    print(f"load {os.getloadavg()[0]:.1f} at end")
    clf.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
