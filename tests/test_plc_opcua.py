"""The PLC handshake over OPC UA, driven by asyncua's own client against a real server.

One server on a free loopback port serves the module (starting one takes a second or two);
each test puts a fresh ``Handshake`` and ``PartTracker`` behind it and waits until the
server shows that handshake's values before it starts.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.ua_binary import uatcp_to_binary

from pi_inspect.edge.events import ModelInfo, State
from pi_inspect.edge.parts import PartResult, PartTracker
from pi_inspect.edge.plc import opcua_nodes as nodes
from pi_inspect.edge.plc.config import OpcuaConfig
from pi_inspect.edge.plc.handshake import Handshake
from pi_inspect.edge.plc.opcua import OpcuaServer

URI = "urn:pi-inspect:test"
FAR = 4_102_444_800.0  # 2100-01-01: a frame after every trigger
LABELS = ("scratch", "dent")
POLL = 0.01
WAIT = 5.0  # seconds a poll gives up after (a bound, never an expectation)
V = ua.VariantType


def config(port: int = 0) -> OpcuaConfig:
    return OpcuaConfig(enabled=True, host="127.0.0.1", port=port, namespace=URI)


@pytest.fixture(scope="module")
def server() -> Iterator[OpcuaServer]:
    srv = OpcuaServer(Handshake(), config())
    srv.start()
    yield srv
    srv.close()


@dataclass
class Station:
    server: OpcuaServer
    handshake: Handshake
    tracker: PartTracker
    frames: int = 0

    @property
    def url(self) -> str:
        host, port = self.server.address
        return f"opc.tcp://{host}:{port}/"

    def frame(self, scores: dict[str, float], alarms: tuple[str, ...] = ()) -> list[PartResult]:
        """One inspected frame: every pending part gets its result, handed to the handshake."""
        self.frames += 1
        results = self.tracker.frame(self.frames, FAR, scores, alarms, 12.0, "m1")
        for result in results:
            self.handshake.on_part(result)
        return results


@pytest.fixture
def station(server: OpcuaServer) -> Station:
    handshake = Handshake(depth=8, clock=lambda: 0.0)  # a still heartbeat
    tracker = PartTracker()
    handshake.connect(lambda pid: tracker.trigger("plc", pid or None)[0].acq_id)
    model = ModelInfo("m", "1", "abcdef0123", labels=LABELS)
    handshake.on_state(State(verdict="ok", active=(), model=model, since=0.0))
    server.handshake = handshake
    station = Station(server, handshake, tracker)
    asyncio.run(_settled(station))
    return station


async def _settled(station: Station) -> None:
    """Wait until every variable shows the fresh handshake's value."""
    want = nodes.values(station.handshake.registers(), station.handshake.labels())
    async with connected(station) as c:
        ids = [c.node(path.removeprefix("Station.")) for path in want]
        for _ in range(int(WAIT / POLL)):
            got = await c.client.read_values(ids)
            if got == list(want.values()):
                return
            await asyncio.sleep(POLL)
    diff = {p: (g, w) for (p, w), g in zip(want.items(), got, strict=True) if g != w}
    raise AssertionError(f"the server never showed the test's handshake: {diff}")


@dataclass
class Ua:
    """A connected client with the station's paths (``"Status.TriggerAck"``)."""

    client: Client
    idx: int

    def node(self, path: str) -> Any:
        return self.client.get_node(ua.NodeId(f"Station.{path}", self.idx))

    async def read(self, path: str) -> Any:
        return await self.node(path).read_value()

    async def write(self, path: str, value: Any, vtype: ua.VariantType = V.Boolean) -> None:
        await self.node(path).write_value(ua.DataValue(ua.Variant(value, vtype)))

    async def until(self, path: str, predicate: Callable[[Any], bool]) -> Any:
        """The variable's value once ``predicate`` holds, or its last value after ``WAIT``."""
        for _ in range(int(WAIT / POLL)):
            value = await self.read(path)
            if predicate(value):
                return value
            await asyncio.sleep(POLL)
        return value

    async def trigger(self, part_id: int) -> int:
        station = self.client.get_node(ua.NodeId("Station", self.idx))
        return await station.call_method(f"{self.idx}:Trigger", ua.Variant(part_id, V.UInt32))

    async def acknowledge(self) -> None:
        await self.write("Control.ResultsAck", True)
        await self.write("Control.ResultsAck", False)


@asynccontextmanager
async def connected(station: Station) -> AsyncIterator[Ua]:
    async with Client(station.url, timeout=5) as client:
        yield Ua(client, await client.get_namespace_index(URI))


@dataclass
class Changes:
    """A subscription handler keeping every value notified, per variable path."""

    seen: dict[str, list[Any]] = field(default_factory=dict)

    def datachange_notification(self, node: Any, val: Any, _data: Any) -> None:
        self.seen.setdefault(str(node.nodeid.Identifier).removeprefix("Station."), []).append(val)

    async def until(self, path: str, predicate: Callable[[list[Any]], bool]) -> list[Any]:
        for _ in range(int(WAIT / POLL)):
            if predicate(self.seen.get(path, [])):
                break
            await asyncio.sleep(POLL)
        return self.seen.get(path, [])


def code(error: pytest.ExceptionInfo[ua.UaStatusCodeError]) -> str:
    return ua.StatusCode(error.value.code).name


def test_the_bit_handshake_over_variables_shows_the_result_until_it_is_acknowledged(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            objects = c.client.nodes.objects
            i = c.idx
            enable = await objects.get_child([f"{i}:Station", f"{i}:Control", f"{i}:Enable"])
            await enable.write_value(ua.DataValue(ua.Variant(True, V.Boolean)))
            await c.write("Control.PartId", 4242, V.UInt32)
            await c.write("Control.Trigger", True)
            assert await c.until("Status.TriggerAck", bool) is True
            acq_id = await c.read("Status.AcqId")
            assert acq_id >= 1 and await c.read("Status.Busy") is True
            await c.write("Control.Trigger", False)
            assert await c.until("Status.TriggerAck", lambda v: not v) is False

            station.frame({"scratch": 0.9, "dent": 0.125}, ("scratch",))
            assert await c.until("Status.ResultValid", bool) is True
            assert await c.read("Result.AcqId") == acq_id
            assert await c.read("Result.PartId") == 4242
            assert await c.read("Result.Code") == 2  # ng
            assert await c.read("Result.Verdict") == 2  # reject
            assert await c.read("Result.AlarmBits") == 0b01  # label 0: scratch
            assert (await c.read("Result.Scores"))[:3] == [0.9, 0.125, 0.0]
            assert await c.read("Result.Labels") == list(LABELS)
            assert await c.read("Result.ProcessingMs") == 12.0
            assert await c.read("Counters.Ng") == 1 and await c.read("Counters.Triggers") == 1
            assert await c.read("Status.Busy") is False

            await c.acknowledge()
            assert await c.until("Status.ResultValid", lambda v: not v) is False
            assert await c.read("Result.AcqId") == 0

    asyncio.run(run())


def test_the_trigger_method_returns_the_acquisition_id_echoed_with_the_part_id(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            await c.write("Control.Enable", True)
            acq_id = await c.trigger(77)
            assert acq_id >= 1 and station.tracker.pending() == 1
            assert await c.until("Status.AcqId", lambda v: v == acq_id) == acq_id
            station.frame({"scratch": 0.1, "dent": 0.2})
            assert await c.until("Result.AcqId", lambda v: v == acq_id) == acq_id
            assert await c.read("Result.PartId") == 77
            assert await c.read("Result.Code") == 1 and await c.read("Result.Verdict") == 1
            assert await c.trigger(78) == acq_id + 1  # a method call needs no bit reset

    asyncio.run(run())


def test_the_trigger_method_returns_zero_and_sets_trigger_failed_while_not_enabled(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            assert await c.trigger(5) == 0
            assert await c.until("Status.TriggerFailed", bool) is True
            assert station.tracker.pending() == 0 and await c.read("Counters.Triggers") == 0

    asyncio.run(run())


def test_a_subscription_sees_the_completed_toggle_and_the_acq_id_of_each_new_result(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            await c.write("Control.Enable", True)
            changes = Changes()
            subscription = await c.client.create_subscription(10, changes)
            watched = [c.node("Status.Completed"), c.node("Result.AcqId")]
            await subscription.subscribe_data_change(watched)
            await changes.until("Status.Completed", lambda seen: seen == [False])
            acq_ids = []
            for n in range(3):
                acq_ids.append(await c.trigger(100 + n))
                station.frame({"scratch": 0.0, "dent": 0.0})
                await changes.until("Result.AcqId", lambda seen: seen[-1:] == acq_ids[-1:])
                await changes.until("Status.Completed", lambda seen, n=n: len(seen) == n + 2)
            assert changes.seen["Result.AcqId"] == [0, *acq_ids]
            assert changes.seen["Status.Completed"] == [False, True, False, True]

    asyncio.run(run())


def test_a_buffered_burst_comes_out_in_order_when_acknowledged_one_by_one(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            await c.write("Control.Enable", True)
            await c.write("Control.BufferEnable", True)
            changes = Changes()
            subscription = await c.client.create_subscription(10, changes)
            await subscription.subscribe_data_change(c.node("Result.AcqId"))
            acq_ids = [await c.trigger(part_id) for part_id in (11, 12, 13)]
            assert len(station.frame({"scratch": 0.5, "dent": 0.5})) == 3  # one frame, 3 parts
            assert await c.until("Status.Buffered", lambda v: v == 3) == 3
            for acq_id in acq_ids:
                await changes.until("Result.AcqId", lambda seen, a=acq_id: seen[-1:] == [a])
                assert await c.read("Result.PartId") == 11 + acq_ids.index(acq_id)
                await c.acknowledge()
            assert await c.until("Status.ResultValid", lambda v: not v) is False
            await changes.until("Result.AcqId", lambda seen: seen[-1:] == [0])
            assert changes.seen["Result.AcqId"] == [0, *acq_ids, 0]
            assert await c.read("Status.Buffered") == 0

    asyncio.run(run())


def test_writes_to_read_only_variables_or_of_the_wrong_type_are_refused_and_serving_goes_on(
    station: Station,
) -> None:
    async def run() -> None:
        async with connected(station) as c:
            for path, value, vtype in (
                ("Status.Ready", True, V.Boolean),
                ("Status.AcqId", 9, V.UInt32),
                ("Result.Scores", [1.0] * 16, V.Double),
                ("Counters.Ok", 0, V.UInt32),
            ):
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await c.write(path, value, vtype)
                assert code(refused) in ("BadUserAccessDenied", "BadNotWritable"), path
            for path, value, vtype in (
                ("Control.Enable", 1, V.UInt32),
                ("Control.Enable", [True, True], V.Boolean),
                ("Control.PartId", 7, V.Int32),
                ("Control.PartId", "7", V.String),
                ("Control.Trigger", None, V.Null),
            ):
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await c.write(path, value, vtype)
                assert code(refused) == "BadTypeMismatch", (path, value)
            station_node = c.client.get_node(ua.NodeId("Station", c.idx))
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await station_node.call_method(f"{c.idx}:Trigger", ua.Variant(7, V.Int32))
            assert code(refused) == "BadTypeMismatch"
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await station_node.call_method(f"{c.idx}:Trigger")
            assert code(refused) == "BadArgumentsMissing"

            assert station.handshake.control_bits() == [False] * 5
            assert station.handshake.registers()[1:3] == [0, 0]  # no part ID
            assert await c.read("Control.Enable") is False
            assert await c.read("Control.PartId") == 0
            await c.write("Control.Enable", True)  # the same session still works
            assert station.handshake.control_bits()[0] is True
        async with connected(station) as c:  # and a new one
            assert await c.read("Control.Enable") is True

    asyncio.run(run())


def test_only_anonymous_sessions_are_taken_so_no_user_name_gets_admin_rights(
    station: Station,
) -> None:
    async def run() -> None:
        client = Client(station.url, timeout=5)
        client.set_user("admin")
        client.set_password("admin")
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await client.connect()
        await client.disconnect()
        assert code(refused) == "BadIdentityTokenRejected"

    asyncio.run(run())


def test_a_client_that_connects_and_never_reads_does_not_stop_another_clients_handshake(
    station: Station,
) -> None:
    host, port = station.server.address
    silent = socket.create_connection((host, port), timeout=5)  # connects, sends nothing
    hello = socket.create_connection((host, port), timeout=5)  # says hello, never reads
    hello.sendall(uatcp_to_binary(ua.MessageType.Hello, ua.Hello(EndpointUrl=station.url)))
    half = socket.create_connection((host, port), timeout=5)  # half a message, then nothing
    half.sendall(b"MSGF" + struct.pack("<I", 1_000_000) + bytes(16))

    async def run() -> None:
        async with connected(station) as c:
            await c.write("Control.Enable", True)
            await c.write("Control.PartId", 9, V.UInt32)
            await c.write("Control.Trigger", True)
            assert await c.until("Status.TriggerAck", bool) is True
            station.frame({"scratch": 0.0, "dent": 0.0})
            assert await c.until("Status.ResultValid", bool) is True
            assert await c.read("Result.PartId") == 9
            await c.acknowledge()
            assert await c.until("Status.ResultValid", lambda v: not v) is False

    try:
        asyncio.run(run())
    finally:
        for sock in (silent, hello, half):
            sock.close()


def test_a_port_in_use_makes_start_raise_and_close_is_idempotent(server: OpcuaServer) -> None:
    taken = OpcuaServer(Handshake(), config(port=server.address[1]))
    with pytest.raises(OSError):
        taken.start()
    taken.close()
    taken.close()

    running = OpcuaServer(Handshake(), config())
    running.start()
    host, port = running.address
    assert port != 0
    socket.create_connection((host, port), timeout=5).close()
    running.close()
    running.close()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=5).close()
