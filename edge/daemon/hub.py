"""What the stations of one daemon share: the outputs (one MQTT connection, one console, one
PLC server) and the one way commands come in.

Each station's dispatcher (``pi_inspect.edge.daemon.dispatch``) completes and stamps what its
station decided and sends it to the hub's outputs; outputs never learn how many dispatchers
there are. A command names its station (``Command.station``); the hub hands it to that
station's receiver, and a command that names none goes to the first station.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pi_inspect.edge.daemon.protocols import Command, CommandSource, Output, Receiver, Reply

log = logging.getLogger(__name__)


class Hub:
    """The shared outputs and the command router. ``close`` is idempotent."""

    def __init__(self, outputs: Sequence[Output] = ()) -> None:
        self.outputs: tuple[Output, ...] = tuple(outputs)
        self._receivers: dict[str, Receiver] = {}
        self._opened = self._closed = False

    def attach(self, station: str, receiver: Receiver) -> None:
        """Commands for ``station`` go to ``receiver`` (its dispatcher's ``receive``)."""
        self._receivers[station] = receiver

    def open(self, outputs: Sequence[Output] | None = None) -> None:
        """From now on send to ``outputs`` (None: those given at construction); those that
        take commands get the hub's ``receive``. Only the first call counts."""
        if self._opened:
            return
        self._opened = True
        if outputs is not None:
            self.outputs = tuple(outputs)
        for out in self.outputs:
            if isinstance(out, CommandSource):
                out.subscribe(self.receive)

    def receive(self, command: Command) -> Reply:
        """Run ``command`` on the station it names; never raises."""
        name = command.station
        if name is None:
            name = next(iter(self._receivers), None)
        receiver = self._receivers.get(name) if name is not None else None
        if receiver is None:
            known = ", ".join(self._receivers) or "none"
            return Reply(command.verb, False, f"no station {name!r} (stations: {known})")
        return receiver(command)

    def close(self) -> None:
        """Close every output; each one is closed even if another fails."""
        if self._closed:
            return
        self._closed = True
        for out in self.outputs:
            try:
                out.close()
            except Exception as exc:  # shutdown goes on: the LEDs must go off regardless
                log.warning("closing %s: %s", type(out).__name__, exc)
