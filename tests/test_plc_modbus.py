"""The Modbus TCP server over the PLC handshake, driven by pymodbus's own client on loopback."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from pymodbus.client import ModbusTcpClient

from pi_inspect.edge.events import ModelInfo, State
from pi_inspect.edge.parts import PartResult, PartTracker
from pi_inspect.edge.plc import registers as r
from pi_inspect.edge.plc.config import ModbusConfig
from pi_inspect.edge.plc.handshake import Handshake
from pi_inspect.edge.plc.modbus import ModbusServer

UNIT = 1
LABELS = ("scratch", "dent")
RUNNING = State("ok", (), ModelInfo("seam", "1", "deadbeef" + "0" * 56, LABELS), 1_700_000_000.0)
FAR_FUTURE = 4_000_000_000.0  # a frame captured after every trigger of the test
EN = 1 << r.ENABLE
TRIG = 1 << r.TRIGGER
ACK = 1 << r.RESULTS_ACK
BUF = 1 << r.BUFFER_ENABLE
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
GATEWAY_NO_RESPONSE = 0x0B


def u32(regs: list[int], address: int) -> int:
    return regs[address] << 16 | regs[address + 1]


class Station:
    """A handshake wired to a part tracker, served over Modbus on a free loopback port."""

    def __init__(self, *, depth: int = 8, unit: int = UNIT) -> None:
        # a fixed clock keeps the heartbeat bit still
        self.handshake = Handshake(depth=depth, clock=lambda: 0.0)
        self.tracker = PartTracker()
        self.trigger_threads: list[str] = []
        self.handshake.connect(self._trigger)
        self.handshake.on_state(RUNNING)
        self.server = ModbusServer(
            self.handshake, ModbusConfig(host="127.0.0.1", port=0, unit=unit)
        )
        self._frame = 0

    def _trigger(self, part_id: int | None) -> int | None:
        self.trigger_threads.append(threading.current_thread().name)
        return self.tracker.trigger("plc", part_id or None)[0].acq_id

    def inspect(self, scores: dict[str, float], alarms: tuple[str, ...] = ()) -> list[PartResult]:
        """One inspected frame: it completes every pending part, whose results go to the PLC."""
        self._frame += 1
        results = self.tracker.frame(self._frame, FAR_FUTURE, scores, alarms, 12.0, "seam")
        for result in results:
            self.handshake.on_part(result)
        return results


class Plc:
    """pymodbus's sync client with the reads a PLC program makes."""

    def __init__(self, address: tuple[str, int], unit: int = UNIT) -> None:
        self.client = ModbusTcpClient(address[0], port=address[1], timeout=5, retries=0)
        self.unit = unit
        if not self.client.connect():
            raise ConnectionError(f"no Modbus server on {address}")

    def regs(self) -> list[int]:
        reply = self.client.read_holding_registers(0, count=r.SIZE, device_id=self.unit)
        if reply.isError():
            raise AssertionError(f"reading the block failed: {reply}")
        return list(reply.registers)

    def status(self) -> int:
        return self.regs()[8]

    def control(self, word: int) -> None:
        reply = self.client.write_register(0, word, device_id=self.unit)
        if reply.isError():
            raise AssertionError(f"writing the control word failed: {reply}")

    def coil(self, bit: int, value: bool) -> None:
        reply = self.client.write_coil(bit, value, device_id=self.unit)
        if reply.isError():
            raise AssertionError(f"writing coil {bit} failed: {reply}")

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def station() -> Iterator[Station]:
    s = Station()
    s.server.start()
    yield s
    s.server.close()


@pytest.fixture
def plc(station: Station) -> Iterator[Plc]:
    p = Plc(station.server.address)
    yield p
    p.close()


def bit(word: int, n: int) -> bool:
    return bool(word >> n & 1)


def test_full_handshake_trigger_result_and_acknowledge(station: Station, plc: Plc) -> None:
    plc.control(EN)
    assert bit(plc.status(), r.READY)
    plc.client.write_registers(1, [0x0001, 0x2345], device_id=UNIT)
    assert u32(plc.regs(), 1) == 0x12345

    plc.control(EN | TRIG)
    regs = plc.regs()
    assert bit(regs[8], r.TRIGGER_ACK) and bit(regs[8], r.BUSY)
    assert not bit(regs[8], r.RESULT_VALID)
    assert u32(regs, 9) == 1  # acquisition ID of the trigger
    assert regs[12] == len(LABELS) and u32(regs, 13) == 0xDEADBEEF
    assert station.trigger_threads == [f"plc-modbus-{station.server.address[1]}"]

    (result,) = station.inspect({"scratch": 0.75, "dent": 0.125}, alarms=("scratch",))
    assert (result.acq_id, result.part_id) == (1, 0x12345)
    regs = plc.regs()
    assert bit(regs[8], r.RESULT_VALID) and bit(regs[8], r.COMPLETED)
    assert not bit(regs[8], r.BUSY)
    assert regs[11] == 1  # buffered
    assert u32(regs, 16) == 1 and u32(regs, 18) == 0x12345
    assert regs[20] == r.CODES["ng"] and regs[21] == r.VERDICTS["ng"]
    assert regs[22] == 0b01  # label 0 (scratch) alarmed
    assert regs[24] == 12  # processing_ms
    assert regs[26:28] == [750, 125]
    assert u32(regs, 48) == 1 and u32(regs, 52) == 1  # triggers, NG
    # the same status as discrete inputs, and the same block as input registers
    inputs = plc.client.read_discrete_inputs(0, count=len(r.STATUS_BITS), device_id=UNIT)
    assert inputs.bits[: len(r.STATUS_BITS)] == [bit(regs[8], i) for i in range(11)]
    mirror = plc.client.read_input_registers(0, count=r.SIZE, device_id=UNIT)
    assert mirror.registers == regs

    plc.control(EN | TRIG | ACK)
    status = plc.status()
    assert not bit(status, r.RESULT_VALID)
    assert bit(status, r.TRIGGER_ACK)  # held while the trigger bit is held
    plc.control(EN)
    assert not bit(plc.status(), r.TRIGGER_ACK)


def test_trigger_held_high_triggers_once(station: Station, plc: Plc) -> None:
    plc.control(EN | TRIG)
    plc.control(EN | TRIG)
    plc.client.write_registers(0, [EN | TRIG, 0, 7], device_id=UNIT)
    plc.coil(r.TRIGGER, True)
    assert u32(plc.regs(), 48) == 1
    assert station.tracker.pending() == 1

    plc.coil(r.TRIGGER, False)
    plc.coil(r.TRIGGER, True)  # a new rising edge
    assert u32(plc.regs(), 48) == 2
    assert station.tracker.pending() == 2


def _burst(station: Station, plc: Plc, parts: int) -> list[PartResult]:
    plc.client.write_coils(0, [True, False, False, False, True], device_id=UNIT)  # enable, buffer
    controls = plc.client.read_coils(0, count=len(r.CONTROL_BITS), device_id=UNIT)
    assert controls.bits[: len(r.CONTROL_BITS)] == [True, False, False, False, True]
    for part_id in range(1000, 1000 + parts):
        plc.client.write_registers(1, [part_id >> 16, part_id & 0xFFFF], device_id=UNIT)
        plc.coil(r.TRIGGER, True)
        assert bit(plc.status(), r.TRIGGER_ACK)
        plc.coil(r.TRIGGER, False)
    return station.inspect({"scratch": 0.1, "dent": 0.2})


def test_burst_of_triggers_is_read_back_in_order_one_acknowledge_at_a_time() -> None:
    station = Station(depth=24)
    station.server.start()
    plc = Plc(station.server.address)
    try:
        results = _burst(station, plc, 20)
        assert [p.acq_id for p in results] == list(range(1, 21))
        seen = []
        for waiting in range(20, 0, -1):
            regs = plc.regs()
            assert bit(regs[8], r.RESULT_VALID) and regs[11] == waiting
            seen.append((u32(regs, 16), u32(regs, 18), regs[20]))
            plc.coil(r.RESULTS_ACK, True)
            plc.coil(r.RESULTS_ACK, False)
        assert seen == [(i, 999 + i, r.CODES["ok"]) for i in range(1, 21)]
        regs = plc.regs()
        assert not bit(regs[8], r.RESULT_VALID) and regs[11] == 0
        assert not bit(regs[8], r.OVERRUN) and u32(regs, 60) == 0
    finally:
        plc.close()
        station.server.close()


def test_burst_beyond_the_buffer_flags_and_counts_overruns() -> None:
    station = Station(depth=4)
    station.server.start()
    plc = Plc(station.server.address)
    try:
        _burst(station, plc, 20)
        regs = plc.regs()
        assert bit(regs[8], r.OVERRUN) and u32(regs, 60) == 16
        assert regs[11] == 4
        kept = []
        for _ in range(4):
            kept.append(u32(plc.regs(), 16))
            plc.coil(r.RESULTS_ACK, True)
            plc.coil(r.RESULTS_ACK, False)
        assert kept == [1, 2, 3, 4]  # the oldest wait; the newest were lost
        status = plc.status()
        assert not bit(status, r.OVERRUN)  # acknowledged
        assert not bit(status, r.RESULT_VALID)
        assert u32(plc.regs(), 60) == 16  # the count stays until clear_counters
    finally:
        plc.close()
        station.server.close()


def test_illegal_reads_and_writes_get_exceptions_and_change_nothing(
    station: Station, plc: Plc
) -> None:
    plc.control(EN)
    plc.client.write_registers(1, [0, 42], device_id=UNIT)
    before = plc.regs()
    c = plc.client
    refused = {
        "write read-only status": c.write_register(8, 1, device_id=UNIT),
        "write read-only result": c.write_registers(16, [1, 2], device_id=UNIT),
        "write across the block's end": c.write_registers(2, [5, 5], device_id=UNIT),
        "write past the map": c.write_register(r.SIZE, 1, device_id=UNIT),
        "read past the end": c.read_holding_registers(r.SIZE - 2, count=3, device_id=UNIT),
        "read far past the end": c.read_holding_registers(1000, count=1, device_id=UNIT),
        "read input registers past the end": c.read_input_registers(r.SIZE, device_id=UNIT),
        "write coil 5": c.write_coil(5, True, device_id=UNIT),
        "write coils across 4": c.write_coils(3, [True, True, True], device_id=UNIT),
        "read coil 5": c.read_coils(5, device_id=UNIT),
        "read discrete input 11": c.read_discrete_inputs(11, device_id=UNIT),
        "read discrete inputs across 10": c.read_discrete_inputs(8, count=4, device_id=UNIT),
        "mask write to status": c.mask_write_register(address=8, or_mask=1, device_id=UNIT),
    }
    for what, reply in refused.items():
        assert reply.isError(), what
        assert reply.exception_code == ILLEGAL_ADDRESS, what
    # read/write in one request (23) is not offered: a valid write with a read past the end
    # must not trigger a part before the request is refused
    reply = c.readwrite_registers(
        read_address=60, read_count=20, write_address=0, values=[EN | TRIG], device_id=UNIT
    )
    assert reply.isError() and reply.exception_code == ILLEGAL_FUNCTION
    assert plc.regs() == before
    assert station.tracker.pending() == 0

    # the server still answers, and still takes legal writes by every function code
    plc.control(EN | TRIG)
    assert bit(plc.status(), r.TRIGGER_ACK)
    reply = c.mask_write_register(address=0, and_mask=0xFFFF ^ BUF, or_mask=BUF, device_id=UNIT)
    assert not reply.isError()
    assert plc.regs()[0] == EN | TRIG | BUF


def test_quantity_outside_the_protocol_limits_gets_an_exception(station: Station) -> None:
    # pymodbus's client refuses to encode these, so they go over a raw socket. pymodbus 3.16
    # refuses them while decoding: exception 1 under function code 0 (0x80), not 3 under the
    # request's own code; either way an exception, and the connection goes on.
    host, port = station.server.address
    with socket.create_connection((host, port), timeout=5) as raw:
        bad = [(3, 0, 0), (3, 0, 126), (1, 0, 0), (1, 0, 2001), (2, 0, 0), (4, 0, 126)]
        for tid, (fc, address, count) in enumerate(bad, 1):
            raw.sendall(struct.pack(">HHHBBHH", tid, 0, 6, UNIT, fc, address, count))
            reply = _recv_exactly(raw, 9)
            assert struct.unpack(">H", reply[:2])[0] == tid
            assert reply[7] in (0x80, fc | 0x80), (fc, count)
            assert reply[8] in (ILLEGAL_FUNCTION, ILLEGAL_VALUE), (fc, count)
        raw.sendall(struct.pack(">HHHBBHH", 99, 0, 6, UNIT, 3, 11, 2))
        reply = _recv_exactly(raw, 13)
        assert reply[7:9] == bytes([3, 4])  # fc 3, four bytes: registers 11 and 12
        assert struct.unpack(">HH", reply[9:]) == (0, len(LABELS))


def test_a_failing_trigger_is_device_failure_and_the_server_goes_on(
    station: Station, plc: Plc
) -> None:
    def broken(_part_id: int | None) -> int | None:
        raise RuntimeError("the station refused")

    station.handshake.connect(broken)
    reply = plc.client.write_register(0, EN | TRIG, device_id=UNIT)
    assert reply.isError() and reply.exception_code == DEVICE_FAILURE
    station.handshake.connect(station._trigger)
    plc.control(EN)
    plc.control(EN | TRIG)
    assert bit(plc.status(), r.TRIGGER_ACK)


def test_unknown_unit_gets_the_gateway_exception(station: Station, plc: Plc) -> None:
    reply = plc.client.read_holding_registers(0, count=1, device_id=UNIT + 1)
    assert reply.isError() and reply.exception_code == GATEWAY_NO_RESPONSE
    reply = plc.client.write_register(0, EN, device_id=UNIT + 1)
    assert reply.isError() and reply.exception_code == GATEWAY_NO_RESPONSE
    assert plc.regs()[0] == 0


def test_unit_zero_answers_every_unit_id() -> None:
    station = Station(unit=0)
    station.server.start()
    plc = Plc(station.server.address, unit=7)
    try:
        plc.control(EN)
        assert bit(plc.status(), r.READY)
    finally:
        plc.close()
        station.server.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_malformed_frames_do_not_stop_the_server(station: Station, plc: Plc) -> None:
    host, port = station.server.address
    garbage = [
        b"\xff" * 600,  # more than a frame can hold
        struct.pack(">HHHB", 1, 0, 0, UNIT),  # length 0
        struct.pack(">HHHBB", 2, 7, 2, UNIT, 3),  # a foreign protocol id
        struct.pack(">HHHBB", 3, 0, 2, UNIT, 0x63),  # an unknown function code
        struct.pack(">HHHBBH", 4, 0, 4, UNIT, 3, 0),  # a truncated read
        struct.pack(">HHHBBHHB", 5, 0, 8, UNIT, 16, 0, 2, 9) + b"\x00",  # a bad byte count
    ]
    for frame in garbage:
        with socket.create_connection((host, port), timeout=5) as raw:
            raw.sendall(frame)
            raw.shutdown(socket.SHUT_WR)
            _drain(raw)
    plc.control(EN)
    assert bit(plc.status(), r.READY)
    assert plc.regs()[1:3] == [0, 0]


def _drain(sock: socket.socket) -> None:
    """Read whatever the server answers, until it hangs up."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


def test_a_silent_client_does_not_hold_up_another(station: Station) -> None:
    host, port = station.server.address
    half_frame = socket.create_connection((host, port), timeout=5)
    never_reads = socket.create_connection((host, port), timeout=5)
    try:
        half_frame.sendall(struct.pack(">HHH", 1, 0, 6))  # a header, and then nothing
        never_reads.sendall(struct.pack(">HHHBBHH", 1, 0, 6, UNIT, 3, 0, r.SIZE))  # unread
        plc = Plc(station.server.address)
        try:
            plc.control(EN)
            plc.client.write_registers(1, [0, 77], device_id=UNIT)
            plc.control(EN | TRIG)
            assert bit(plc.status(), r.TRIGGER_ACK)
            station.inspect({"scratch": 0.0, "dent": 0.0})
            regs = plc.regs()
            assert bit(regs[8], r.RESULT_VALID) and u32(regs, 18) == 77
            plc.control(EN | ACK)
            assert not bit(plc.status(), r.RESULT_VALID)
        finally:
            plc.close()
    finally:
        half_frame.close()
        never_reads.close()


def test_start_on_a_port_in_use_raises_oserror(station: Station, plc: Plc) -> None:
    host, port = station.server.address
    second = ModbusServer(Handshake(), ModbusConfig(host=host, port=port, unit=UNIT))
    with pytest.raises(OSError):
        second.start()
    second.close()  # what PlcOutput does with a server that did not start
    plc.control(EN)  # the first one still serves
    assert bit(plc.status(), r.READY)


def _server_threads(port: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"plc-modbus-{port}"]


def test_close_is_idempotent_and_frees_the_port() -> None:
    station = Station()
    station.server.start()
    host, port = station.server.address
    assert port != 0 and _server_threads(port)
    plc = Plc((host, port))
    plc.control(EN)
    station.server.close()
    station.server.close()
    plc.close()
    assert not _server_threads(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
        probe.bind((host, port))  # nothing listens on it any more
        probe.listen()
    again = ModbusServer(station.handshake, ModbusConfig(host=host, port=port, unit=UNIT))
    again.start()
    try:
        plc = Plc(again.address)
        assert plc.regs()[0] == EN  # the same handshake, served again
        plc.close()
    finally:
        again.close()
