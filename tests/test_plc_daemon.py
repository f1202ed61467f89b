"""The PLC handshake through a running station: a PLC (pymodbus's own client) triggers parts
on a real Modbus TCP server on loopback and reads each part's one result back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from daemon_helpers import ERROR_BGR, FlakySource, wait_until

from pi_inspect.edge.config import output_context, parse_config
from pi_inspect.edge.outputs.registry import plugins
from pi_inspect.edge.plc import registers as r

pytest.importorskip("pymodbus")
from pymodbus.client import ModbusTcpClient  # noqa: E402

ENABLE, TRIGGER, ACK, BUFFER = (
    1 << r.ENABLE,
    1 << r.TRIGGER,
    1 << r.RESULTS_ACK,
    1 << r.BUFFER_ENABLE,
)  # noqa: E501


def u32(regs: list[int], address: int) -> int:
    return regs[address] << 16 | regs[address + 1]


@pytest.fixture
def station(tmp_path: Path, make_daemon):
    """``start(source, **trigger)`` -> a Modbus client on a running station's PLC server."""
    started = []

    def start(source, **trigger):
        config = parse_config(
            {
                "source": {"uri": "0"},
                "snapshots": {"dir": str(tmp_path / "snaps")},
                "output": {"stats_interval_s": 0.05},
                "trigger": {"mode": "demand", "max_pending": 64, **trigger},
                "plc": {"enabled": True, "buffer_depth": 32, "modbus": {"port": 0}},
            }
        )
        plc = plugins()["plc"].build(config.plc, output_context(config))
        daemon = make_daemon(config, source=source, outputs=[plc])
        stop = threading.Event()
        thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
        thread.start()
        host, port = plc.server("modbus").address
        client = ModbusTcpClient(host, port=port)
        client.connect()
        started.append((stop, thread, client))
        return client

    yield start
    for stop, thread, client in started:
        client.close()
        stop.set()
        thread.join(10)


def block(client) -> list[int]:
    return client.read_holding_registers(0, count=r.SIZE).registers


def status(client) -> int:
    return client.read_holding_registers(8, count=1).registers[0]


def trigger(client, part_id: int, keep: int = ENABLE) -> None:
    client.write_registers(1, [part_id >> 16, part_id & 0xFFFF])
    client.write_register(0, keep | TRIGGER)
    client.write_register(0, keep)


def acknowledge(client, keep: int = ENABLE) -> None:
    client.write_register(0, keep | ACK)
    client.write_register(0, keep)


def test_the_full_handshake_ends_with_the_part_id_echoed_and_acknowledged(station):
    source = FlakySource(die_after=10**9, refusals=0, colour=ERROR_BGR, period_s=0.005)
    client = station(source)
    client.write_register(0, ENABLE)
    assert wait_until(lambda: status(client) >> r.READY & 1)
    client.write_registers(1, [0x0001, 0x0002])  # part ID 65538
    client.write_register(0, ENABLE | TRIGGER)
    assert wait_until(lambda: status(client) >> r.TRIGGER_ACK & 1)
    assert wait_until(lambda: status(client) >> r.RESULT_VALID & 1)
    regs = block(client)
    assert u32(regs, 18) == 65538 and u32(regs, 16) == u32(regs, 9) == 1
    assert regs[20] == r.CODES["ng"] and regs[21] == r.VERDICTS["ng"]
    labels = ("good", "error", "break", "length")  # the scripted model's, in order
    assert regs[12] == len(labels) and regs[22] == 1 << labels.index("error")
    assert regs[26 + labels.index("error")] > 500
    client.write_register(0, ENABLE)  # trigger down: ack down
    assert not status(client) >> r.TRIGGER_ACK & 1
    acknowledge(client)
    assert not status(client) >> r.RESULT_VALID & 1
    assert u32(block(client), 48) == 1 and u32(block(client), 52) == 1  # triggers, NG


def test_a_burst_of_twenty_triggers_comes_back_in_order_through_the_buffer(station):
    client = station(FlakySource(die_after=10**9, refusals=0, period_s=0.004))
    keep = ENABLE | BUFFER
    client.write_register(0, keep)
    assert wait_until(lambda: status(client) >> r.READY & 1)
    for part_id in range(1000, 1020):
        trigger(client, part_id, keep)
    assert wait_until(lambda: block(client)[11] == 20 or u32(block(client), 50) == 20)
    echoed = []
    for _ in range(20):
        assert wait_until(lambda: status(client) >> r.RESULT_VALID & 1)
        regs = block(client)
        echoed.append(u32(regs, 18))
        acknowledge(client, keep)
    assert echoed == list(range(1000, 1020))
    assert not status(client) >> r.RESULT_VALID & 1
    assert not status(client) >> r.OVERRUN & 1


def test_a_trigger_during_a_camera_outage_is_counted_missed_and_flagged(station):
    source = FlakySource(die_after=15, refusals=10**9, period_s=0.004)
    client = station(source)
    client.write_register(0, ENABLE)
    assert wait_until(lambda: status(client) >> r.FAULT & 1)
    assert not status(client) >> r.READY & 1
    trigger(client, 42)
    assert wait_until(lambda: status(client) >> r.RESULT_VALID & 1)
    regs = block(client)
    assert regs[20] == r.CODES["missed"] and regs[21] == r.VERDICTS["ng"]
    assert u32(regs, 18) == 42 and regs[8] >> r.MISSED & 1
    assert u32(regs, 54) == 1  # count_missed
    acknowledge(client)
    assert not status(client) >> r.MISSED & 1


def test_a_late_result_is_counted_and_given_the_configured_verdict(station):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.03)
    client = station(source, deadline_ms=0.001, late_verdict="ok")
    client.write_register(0, ENABLE)
    assert wait_until(lambda: status(client) >> r.READY & 1)  # the station takes triggers
    trigger(client, 7)
    assert wait_until(lambda: status(client) >> r.RESULT_VALID & 1)
    regs = block(client)
    assert regs[8] >> r.LATE & 1 and u32(regs, 56) == 1  # late flag, count_late
    assert regs[21] == r.VERDICTS["ok"] and u32(regs, 18) == 7


def test_a_trigger_without_enable_is_refused_and_says_so(station):
    client = station(FlakySource(die_after=10**9, refusals=0, period_s=0.005))
    trigger(client, 3, keep=0)
    assert status(client) >> r.TRIGGER_FAILED & 1
    assert not status(client) >> r.TRIGGER_ACK & 1
    assert u32(block(client), 48) == 0


def test_malformed_plc_traffic_never_stops_inspection(station):
    import socket

    source = FlakySource(die_after=10**9, refusals=0, period_s=0.004)
    client = station(source)
    host, port = client.comm_params.host, client.comm_params.port
    assert host == "127.0.0.1"  # loopback unless a host is configured
    client.write_register(0, ENABLE)
    assert wait_until(lambda: status(client) >> r.READY & 1)  # the station takes triggers
    silent = socket.create_connection((host, port))  # connects and never reads
    junk = socket.create_connection((host, port))
    junk.sendall(b"\x00\x01\x00\x00\x00\xff\x01\x03" + b"\xff" * 300)  # a lying length
    assert client.write_register(8, 1).isError()  # the status word is read-only
    assert client.write_registers(60, [1, 2, 3]).isError()  # counters too
    assert client.read_holding_registers(r.SIZE - 1, count=5).isError()  # past the end
    client.write_register(0, ENABLE | TRIGGER)  # held high: one trigger, however often written
    for _ in range(5):
        client.write_register(0, ENABLE | TRIGGER)
    assert wait_until(lambda: status(client) >> r.RESULT_VALID & 1)
    seen = source.index
    assert wait_until(lambda: source.index > seen + 20)  # frames still flow
    assert u32(block(client), 48) == 1
    client.write_register(0, ENABLE)
    acknowledge(client)
    trigger(client, 9)
    assert wait_until(lambda: u32(block(client), 18) == 9)
    silent.close()
    junk.close()


def test_the_late_flag_follows_the_result_shown_when_buffering_stops():
    from pi_inspect.edge.parts import PartTracker
    from pi_inspect.edge.plc.handshake import Handshake

    clock = {"now": 0.0}
    tracker = PartTracker(deadline_ms=10, clock=lambda: clock["now"])
    handshake = Handshake()
    handshake.connect(lambda pid: tracker.trigger("plc", pid)[0].acq_id)
    handshake.write(0, [ENABLE | BUFFER])
    for late in (True, False):
        handshake.write(0, [ENABLE | BUFFER | TRIGGER])
        handshake.write(0, [ENABLE | BUFFER])
        clock["now"] += 1.0 if late else 0.0
        for result in tracker.frame(1, 1e12, {"error": 0.1}, [], 1.0, "m"):
            handshake.on_part(result)
    assert handshake.registers()[8] >> r.LATE & 1  # the first, late one is shown
    handshake.write(0, [ENABLE])  # buffering off: the newest stays
    regs = handshake.registers()
    assert u32(regs, 16) == 2 and not regs[8] >> r.LATE & 1


def test_a_station_without_the_plc_libraries_has_a_plc_fault_and_inspects_on(monkeypatch):
    import builtins

    from pi_inspect.edge.config import parse_config

    real_import = builtins.__import__

    def no_pymodbus(name, *args, **kwargs):
        if name.startswith("pi_inspect.edge.plc.modbus") or name.startswith("pymodbus"):
            raise ModuleNotFoundError("No module named 'pymodbus'", name="pymodbus")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pymodbus)
    config = parse_config({"plc": {"enabled": True, "modbus": {"port": 0}}})
    plc = plugins()["plc"].build(config.plc, output_context(config))
    faults = plc.health().faults
    assert "pymodbus" in faults["plc"] and "pi-inspect[plc]" in faults["plc"]
    assert plc.servers == []
    plc.close()
