"""The handshake over Modbus TCP (pymodbus): the register map as holding registers, the same
block as input registers, the control bits as coils 0-4 and the status bits as discrete inputs
0-10.

Every request reads or writes the shared ``Handshake`` as it stands, so a PLC never sees a stale
copy and its writes take the handshake's own rules (edges, the writable block). ``start`` binds
the socket in the caller, so a port in use is an ``OSError`` there, then serves on a daemon
thread with its own event loop; the handshake's trigger callback runs on that thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import socket
import threading
from collections.abc import Sequence
from contextlib import suppress

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.base import ModbusBaseServer

from pi_inspect.edge.plc import registers as r
from pi_inspect.edge.plc.config import ModbusConfig
from pi_inspect.edge.plc.handshake import Handshake

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 5.0
# function codes by the table they address (22, mask write, acts on registers). 23 (read and
# write in one request) is not offered: pymodbus writes before it checks the read half, so a
# refused request could still have changed the control word.
_REGISTER_FCS = frozenset({3, 4, 6, 16, 22})
_REGISTER_WRITE_FCS = frozenset({6, 16, 22})
_COIL_FCS = frozenset({1, 5, 15})
_DISCRETE_INPUTS_FC = 2
_MAX_READ_REGISTERS, _MAX_READ_BITS = 125, 2000  # the protocol's limits per request


class _Store(ModbusServerContext):
    """pymodbus's datastore, answered from the handshakes on every request: station i's
    block at register ``i * STATION_STRIDE`` and bit ``i * STATION_BIT_STRIDE``."""

    def __init__(self, handshakes: Sequence[Handshake], unit: int) -> None:
        # No super().__init__(): it copies its devices into pymodbus's simulator. A context
        # with no simulator devices and ``old_simulator`` set is called as it stands.
        self.simdevices = []
        self.old_simulator = True
        self._handshakes = list(handshakes)
        self._unit = unit

    def _block(self, address: int, count: int, bits: bool) -> tuple[Handshake, int] | None:
        """The handshake of the station whose block holds ``address .. address+count-1``
        and the offset in it; None when the range leaves one block."""
        stride = r.STATION_BIT_STRIDE if bits else r.STATION_STRIDE
        index, offset = divmod(address, stride)
        if address < 0 or index >= len(self._handshakes) or offset + count > stride:
            return None
        return self._handshakes[index], offset

    def device_ids(self) -> list[int]:
        return [self._unit]

    def _check_unit(self, device_id: int) -> None:
        if self._unit and device_id != self._unit:
            raise NoSuchIdException(f"unit {device_id}: this station answers unit {self._unit}")

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check_unit(device_id)
        try:
            return self._read(func_code, address, count)
        except Exception:  # a fault of ours answers "device failure", the server goes on
            log.exception("plc: modbus read fc %d at %d", func_code, address)
            return ExcCodes.DEVICE_FAILURE

    async def async_setValues(
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        self._check_unit(device_id)
        try:
            return self._write(func_code, address, list(values))
        except Exception:
            log.exception("plc: modbus write fc %d at %d", func_code, address)
            return ExcCodes.DEVICE_FAILURE

    def _read(self, func_code: int, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        if func_code not in _REGISTER_FCS | _COIL_FCS | {_DISCRETE_INPUTS_FC}:
            return ExcCodes.ILLEGAL_FUNCTION
        bits = func_code not in _REGISTER_FCS
        if not 1 <= count <= (_MAX_READ_BITS if bits else _MAX_READ_REGISTERS):
            return ExcCodes.ILLEGAL_VALUE
        block = self._block(address, count, bits)
        if block is None:
            return ExcCodes.ILLEGAL_ADDRESS
        handshake, offset = block
        values: list[int] | list[bool]
        if func_code in _REGISTER_FCS:
            values = handshake.registers()
        elif func_code in _COIL_FCS:
            values = handshake.control_bits()
        else:
            values = handshake.bits()
        if offset + count > len(values):
            return ExcCodes.ILLEGAL_ADDRESS
        return values[offset : offset + count]

    def _write(
        self, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if not values:
            return ExcCodes.ILLEGAL_VALUE
        if func_code not in _REGISTER_WRITE_FCS | _COIL_FCS:
            return ExcCodes.ILLEGAL_FUNCTION
        bits = func_code in _COIL_FCS
        block = self._block(address, len(values), bits)
        if block is None:
            return ExcCodes.ILLEGAL_ADDRESS
        handshake, offset = block
        end = offset + len(values)
        if not bits:
            if offset < r.WRITABLE.start or end > r.WRITABLE.stop:
                return ExcCodes.ILLEGAL_ADDRESS
            ok = handshake.write(offset, [int(v) for v in values])
        else:
            if end > len(r.CONTROL_BITS):
                return ExcCodes.ILLEGAL_ADDRESS
            ok = handshake.write_coils(offset, [bool(v) for v in values])
        return None if ok else ExcCodes.ILLEGAL_VALUE


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(sockaddr[:2], family=family)


class ModbusServer:
    """Modbus TCP over the handshake of each station; see the module docstring."""

    name = "modbus"

    def __init__(self, handshake: Handshake | Sequence[Handshake], config: ModbusConfig) -> None:
        self._handshakes = [handshake] if isinstance(handshake, Handshake) else list(handshake)
        self._config = config
        self._address: tuple[str, int] = (config.host, config.port)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def start(self) -> None:
        """Bind (``OSError`` when the address cannot be had), then serve on a daemon thread."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("modbus server already started")
            sock = _bind(self._config.host, self._config.port)
            host, port = sock.getsockname()[:2]
            self._address = (host, port)
            started: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._sock, self._loop, self._stop = sock, asyncio.new_event_loop(), asyncio.Event()
            self._thread = threading.Thread(
                target=self._run,
                args=(self._loop, self._stop, sock, started),
                name=f"plc-modbus-{port}",
                daemon=True,
            )
            self._thread.start()
        try:
            started.result(timeout=_START_TIMEOUT_S)
        except concurrent.futures.TimeoutError as exc:
            self.close()
            raise RuntimeError(f"modbus server not serving after {_START_TIMEOUT_S:g} s") from exc
        except OSError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise RuntimeError(f"modbus server failed to start: {exc}") from exc

    def close(self) -> None:
        """Stop serving, end the thread (bounded wait) and release the port. Idempotent."""
        with self._lock:
            thread, loop, stop, sock = self._thread, self._loop, self._stop, self._sock
            self._thread = self._loop = self._stop = self._sock = None
        if thread is None or loop is None or stop is None or sock is None:
            return
        with suppress(RuntimeError):  # the loop has already ended
            loop.call_soon_threadsafe(stop.set)
        if thread is threading.current_thread():
            return  # called from a request: the loop ends after it and its thread closes the socket
        thread.join(_CLOSE_TIMEOUT_S)
        if thread.is_alive():
            log.warning("plc: modbus server thread still running after %gs", _CLOSE_TIMEOUT_S)
        sock.close()

    # -- the server's thread ------------------------------------------------------------------
    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        stop: asyncio.Event,
        sock: socket.socket,
        started: concurrent.futures.Future[None],
    ) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(stop, sock, started))
        except BaseException as exc:  # reported to start(), or logged once serving
            if not started.done():
                started.set_exception(exc)
            else:
                log.exception("plc: modbus server stopped")
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                sock.close()

    async def _serve(
        self, stop: asyncio.Event, sock: socket.socket, started: concurrent.futures.Future[None]
    ) -> None:
        loop = asyncio.get_running_loop()
        server = ModbusTcpServer(
            _Store(self._handshakes, self._config.unit),
            address=self._address,
            ignore_missing_devices=False,  # a wrong unit id: gateway exception 0x0B
        )
        # listen on the socket start() bound rather than binding again
        server.call_create = functools.partial(
            loop.create_server, server.handle_new_connection, sock=sock
        )
        if not await server.listen():
            raise OSError(f"modbus server could not listen on {self._address}")
        listener = server.transport
        started.set_result(None)
        try:
            await stop.wait()
        finally:
            await server.shutdown()
            if isinstance(listener, asyncio.AbstractServer):
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(listener.wait_closed(), _CLOSE_TIMEOUT_S / 2)
            if ModbusBaseServer.active_server is server:
                ModbusBaseServer.active_server = None
