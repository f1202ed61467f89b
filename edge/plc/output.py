"""The PLC output: one ``Handshake`` per station, served by the enabled protocol servers (one
Modbus server and one OPC UA server for the whole device: a block of registers, or an object,
per station).

It receives part results and the station's state like any output, and its triggers go back as
the ``trigger`` command through the receiver the dispatcher hands it; it never holds the
daemon. A server that cannot bind is the ``plc`` fault (amber, one log line) while inspection
and the other server go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.health import Health
from pi_inspect.edge.outputs import Command, Receiver
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.plc.handshake import Handshake

log = logging.getLogger(__name__)

FAULT = "plc"


class Server(Protocol):
    """One protocol's server over the shared handshake. ``start`` binds (raising ``OSError``
    when it cannot) and serves on a thread of its own; ``close`` is idempotent."""

    name: str

    def start(self) -> None: ...

    @property
    def address(self) -> tuple[str, int]: ...  # where it listens (port 0 resolved)

    def close(self) -> None: ...


class PlcOutput:
    def __init__(
        self,
        handshake: Handshake | Mapping[str, Handshake],
        servers: Sequence[Server],
        problems: Sequence[str] = (),
    ) -> None:
        # by station; a device of one station has one handshake, whatever its name
        self.handshakes = {"": handshake} if isinstance(handshake, Handshake) else dict(handshake)
        self.handshake = next(iter(self.handshakes.values()))
        self.servers: list[Server] = []
        self._problems: list[str] = list(problems)
        for problem in self._problems:
            log.error("plc: %s", problem)
        for server in servers:
            try:
                server.start()
            except (OSError, RuntimeError) as exc:
                message = f"{server.name} server not started: {exc}"
                log.error("plc: %s", message)
                self._problems.append(message)
                server.close()
                continue
            host, port = server.address
            log.info("plc: %s server on %s:%d", server.name, host, port)
            self.servers.append(server)

    def subscribe(self, receiver: Receiver) -> None:
        several = len(self.handshakes) > 1
        for name, handshake in self.handshakes.items():
            handshake.connect(_trigger(receiver, name if several else None))

    def _of(self, station: str | None) -> Handshake | None:
        if len(self.handshakes) == 1:
            return self.handshake
        return self.handshakes.get(station or "")

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    # -- Output -------------------------------------------------------------------------------
    def publish_part(self, result: PartResult) -> None:
        if (handshake := self._of(result.station)) is not None:
            handshake.on_part(result)

    def publish_state(self, state: State) -> None:
        if (handshake := self._of(state.station)) is not None:
            handshake.on_state(state)

    def publish_event(self, event: DefectEvent) -> None: ...

    def publish_result(self, result: FrameResult) -> None: ...

    def publish_stats(self, stats: Stats) -> None: ...

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None: ...

    def health(self) -> Health:
        return Health(faults={FAULT: "; ".join(self._problems) or None})

    def close(self) -> None:
        for server in self.servers:
            try:
                server.close()
            except Exception as exc:  # the others still close
                log.warning("plc: closing the %s server: %s", server.name, exc)
        self.servers = []


def _trigger(receiver: Receiver, station: str | None) -> Callable[[int | None], int | None]:
    def trigger(part_id: int | None) -> int | None:
        args = {"part_id": part_id or None, "source": "plc"}
        reply = receiver(Command("trigger", args, station))
        return reply.result.get("acq_id") if reply.ok else None

    return trigger
