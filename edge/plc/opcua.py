"""The PLC handshake as an OPC UA server (asyncua): typed variables and a ``Trigger`` method.

The namespace (``opcua_nodes``) is the Modbus register map with types: ``Station.Control``
is written by clients and goes into the shared ``Handshake`` as the same coil and register
writes a Modbus PLC makes; ``Status``, ``Result`` and ``Counters`` are read-only and refreshed
from the register block every ``PERIOD`` seconds, writing only the values that changed, so a
subscribing client gets each change as a data change.

Security is kept simple on purpose: one endpoint with security policy None and anonymous
sessions only (no user names, no built-in admin), bound to loopback by default. On a plant
network put it behind what the site uses for that (a firewall, a VPN, an OPC UA gateway with
certificates); docs/plc.md says how.

The server runs on a daemon thread with its own asyncio event loop; nothing a client sends
raises out of it: a write of the wrong type or shape to a control variable is answered
``BadTypeMismatch``, a write to a read-only one ``BadUserAccessDenied`` (asyncua's answer for
an access level without ``CurrentWrite``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import socket
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback

from pi_inspect.edge.plc import opcua_nodes as nodes
from pi_inspect.edge.plc.config import OpcuaConfig
from pi_inspect.edge.plc.handshake import U16, U32, Handshake

log = logging.getLogger(__name__)

PERIOD = 0.01  # seconds between refreshes of the read-only values
START_TIMEOUT = 30.0  # seconds start() waits for the server to listen
STOP_TIMEOUT = 5.0  # seconds close() waits for the server to stop, and again for its thread


class OpcuaServer:
    """Each station's handshake served over OPC UA (see the module's docstring): one object
    ``Station``, or on a device of several stations one object per station, by name."""

    name = "opcua"

    def __init__(self, handshake: Handshake | Mapping[str, Handshake], config: OpcuaConfig) -> None:
        self._roots: dict[str, Handshake] = (
            {nodes.ROOT: handshake} if isinstance(handshake, Handshake) else dict(handshake)
        )
        self._first = next(iter(self._roots))
        self.config = config
        self.namespace_index = 0  # set once started: the index of ``config.namespace``
        self._port = config.port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._closed = False
        # writable variables by node ID, with the station (object) whose handshake they write
        self._control: dict[ua.NodeId, tuple[nodes.Var, str]] = {}
        self._published: dict[str, Any] = {}  # the value each variable shows, by node ID text
        self._refresh_failing = False

    # -- Server -------------------------------------------------------------------------------
    @property
    def handshake(self) -> Handshake:
        """The (first) station's handshake."""
        return self._roots[self._first]

    @handshake.setter
    def handshake(self, handshake: Handshake) -> None:
        self._roots[self._first] = handshake

    def start(self) -> None:
        """Start serving; returns once the server listens. Raises ``OSError`` when the port
        cannot be bound, ``RuntimeError`` when started twice or not listening in time."""
        if self._thread is not None or self._closed:
            raise RuntimeError("the OPC UA server was started already")
        _probe(self.config.host, self._port)  # a taken port fails here, before the slow part
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop, self._stop = asyncio.new_event_loop(), asyncio.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="plc-opcua", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=START_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise RuntimeError(f"not listening after {START_TIMEOUT:g} s") from None

    @property
    def address(self) -> tuple[str, int]:
        return self.config.host, self._port

    def close(self) -> None:
        """Stop the server and join its thread (bounded); safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # closed already: it never started
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(timeout=2 * STOP_TIMEOUT)
            if thread.is_alive():
                log.warning("plc: the OPC UA server thread did not stop in time")

    # -- the server's thread ------------------------------------------------------------------
    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(ready, stop))
        except Exception as exc:  # never reached by a client; the thread ends quietly
            log.exception("plc: the OPC UA server stopped")
            if not ready.done():
                ready.set_exception(exc)
        finally:
            loop.close()

    async def _serve(self, ready: concurrent.futures.Future[None], stop: asyncio.Event) -> None:
        try:
            server = await self._started()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        refresh = asyncio.create_task(self._refresh(server))
        try:
            await stop.wait()
        finally:
            refresh.cancel()
            try:
                await asyncio.wait_for(server.stop(), STOP_TIMEOUT)
            except (Exception, asyncio.TimeoutError) as exc:
                log.warning("plc: stopping the OPC UA server: %s", exc)

    async def _started(self) -> Server:
        server = Server()
        await server.init()
        host = self.config.host
        server.set_endpoint(f"opc.tcp://{f'[{host}]' if ':' in host else host}:{self._port}/")
        server.set_server_name("pi-inspect station")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        server.allow_remote_admin(False)  # else a user name "admin" could write any node
        idx = self.namespace_index = await server.register_namespace(self.config.namespace)
        for root in self._roots:
            await nodes.build(server, idx, functools.partial(self._trigger_method, root), root)
            for var in nodes.LAYOUT:
                self._published[var.at(root)] = var.initial()
                if var.writable:
                    self._control[nodes.node_id(var.at(root), idx)] = (var, root)
        self._server = server
        self._publishing = asyncio.Lock()  # one snapshot written at a time, never interleaved
        await self._publish(server)  # the first values before any client connects
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        await server.start()  # raises OSError when the port is taken
        if server.bserver is not None:
            self._port = server.bserver.port
        return server

    # -- values out ---------------------------------------------------------------------------
    async def _refresh(self, server: Server) -> None:
        while True:
            try:
                await self._publish(server)
                self._refresh_failing = False
            except Exception:  # logged once per run of failures; the refresh goes on
                if not self._refresh_failing:
                    log.exception("plc: refreshing the OPC UA values")
                self._refresh_failing = True
            await asyncio.sleep(PERIOD)

    async def _publish(self, server: Server) -> None:
        """Write the variables whose value differs from what they show (controls included,
        so a Modbus client's writes show here too), all from one snapshot of the register
        block, so a new result's variables change together; one snapshot at a time, so an
        older one never overwrites a newer one."""
        async with self._publishing:
            await self._write_changed(server)

    async def _write_changed(self, server: Server) -> None:
        for root, handshake in list(self._roots.items()):
            await self._write_station(server, root, handshake)

    async def _write_station(self, server: Server, root: str, handshake: Handshake) -> None:
        values = nodes.values(handshake.registers(), handshake.labels())
        idx = self.namespace_index
        now = datetime.now(timezone.utc)
        for var in nodes.LAYOUT:
            value, path = values[var.path], var.at(root)
            if self._published.get(path) == value:
                continue
            variant = ua.Variant(value, var.vtype)
            dv = ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now)
            self._published[path] = value  # first: a client write while awaiting wins
            await server.write_attribute_value(nodes.node_id(path, idx), dv)

    # -- client writes ------------------------------------------------------------------------
    def _pre_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        """Turn a malformed write to a control variable (an array, an index range, a bad
        status, a value out of range) into a null value asyncua refuses as BadTypeMismatch,
        before anything is stored."""
        try:
            for item in event.request_params.NodesToWrite:
                var, _ = self._control.get(item.NodeId, (None, None))
                is_value = item.AttributeId == ua.AttributeIds.Value
                if var is not None and is_value and _scalar(var, item) is None:
                    item.Value = ua.DataValue(ua.Variant(None, ua.VariantType.Null))
        except Exception:
            log.exception("plc: checking an OPC UA write")

    async def _post_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        """Hand the control writes asyncua accepted to the handshake, in request order, and
        show their effect before the write is answered: a client that acknowledges a result
        and reads at once sees the next one, never the one it acknowledged."""
        if not event.is_external:
            return
        try:
            items = event.request_params.NodesToWrite
            for item, status in zip(items, event.response_params, strict=False):
                var, root = self._control.get(item.NodeId, (None, None))
                if var is None or root is None or item.AttributeId != ua.AttributeIds.Value:
                    continue
                handshake = self._roots[root]
                value = _scalar(var, item)
                if value is None or not status.is_good():
                    continue
                self._published[str(item.NodeId.Identifier)] = value  # what the node shows now
                if var.coil is not None:
                    handshake.write_coils(var.coil, [bool(value)])
                else:
                    handshake.write(1, [value >> 16, value & U16])
            await self._publish(self._server)
        except Exception:
            log.exception("plc: applying an OPC UA write")

    # -- the Trigger method -------------------------------------------------------------------
    async def _trigger_method(self, root: str, _parent: ua.NodeId, *args: ua.Variant) -> Any:
        """``Trigger(PartId: UInt32) -> AcqId: UInt32``: write the part ID and pulse the
        trigger bit, as a PLC does; 0 when the trigger is refused (not enabled, or the station
        takes no triggers), with ``Status.TriggerFailed`` set as for the bit."""
        if not args:
            return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing)
        if len(args) > 1:
            return ua.StatusCode(ua.StatusCodes.BadTooManyArguments)
        arg = args[0]
        if not (isinstance(arg, ua.Variant) and arg.VariantType == ua.VariantType.UInt32):
            return ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
        if arg.is_array or not isinstance(arg.Value, int) or not 0 <= arg.Value <= U32:
            return ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
        acq_id = self._roots[root].pulse_trigger(arg.Value) or 0
        try:
            await self._publish(self._server)  # the trigger's flags, before the answer
        except Exception:
            log.exception("plc: refreshing the OPC UA values")
        return [ua.Variant(acq_id, ua.VariantType.UInt32)]


def _probe(host: str, port: int) -> None:
    """Bind and release ``host:port`` as asyncio's server will (address reuse on POSIX);
    raises ``OSError`` when it is taken. asyncua builds its address space (a second or two)
    before it binds: this answers first."""
    if port == 0:
        return
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    with socket.create_server(address, family=family):
        pass


def _scalar(var: nodes.Var, item: ua.WriteValue) -> bool | int | None:
    """The value a control write carries, or None when it is not one value of the variable's
    type (and range)."""
    dv = item.Value
    if item.IndexRange or dv is None or dv.Value is None:
        return None
    if dv.StatusCode is not None and not dv.StatusCode.is_good():
        return None
    variant = dv.Value
    if variant.VariantType != var.vtype or variant.is_array:
        return None
    value = variant.Value
    if var.vtype == ua.VariantType.Boolean:
        return value if isinstance(value, bool) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U32:
        return value
    return None
