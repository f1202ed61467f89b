"""Where daemon results go, and how commands come back (Frigate's communicator idea).

The daemon's dispatcher calls every configured ``Output``; each decides what to do with it.
Outputs must not block the inference loop for long: one that talks to the network queues and
returns. An output that takes commands (MQTT) is a ``CommandSource``: the dispatcher hands it
one ``Receiver`` callback, and every command goes through it and comes back as a ``Reply``.
No output ever holds the daemon itself. This module is the contract between the two sides, so
outputs import it, never ``edge.daemon``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO, runtime_checkable

from edge.events import DefectEvent, FrameResult, State, Stats


@runtime_checkable
class Output(Protocol):
    """What the daemon publishes. Implementations ignore what they don't care about."""

    def publish_event(self, event: DefectEvent) -> None: ...

    def publish_result(self, result: FrameResult) -> None: ...

    def publish_stats(self, stats: Stats) -> None: ...

    def publish_state(self, state: State) -> None: ...

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Command:
    """A validated request: ``snapshot``, ``trigger``, ``reload`` or ``thresholds``."""

    verb: str
    thresholds: dict[str, float] = field(default_factory=dict)  # for ``thresholds`` only


@dataclass(frozen=True)
class Reply:
    """The outcome of one command (for MQTT: what goes back on ``cmd/result``)."""

    command: str
    ok: bool
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "error": self.error, "result": self.result}


Receiver = Callable[[Command], Reply]  # thread-safe; never raises


@runtime_checkable
class CommandSource(Protocol):
    """An output that also takes commands: it passes each one to ``receiver``."""

    def subscribe(self, receiver: Receiver) -> None: ...


class JsonLinesOutput:
    """Events and stats as one JSON object per line on a text stream (journald-friendly)."""

    def __init__(self, stream: TextIO | None = None, results: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._results = results
        self._lock = threading.Lock()
        self._closed = False

    def _write(self, kind: str, payload: dict) -> None:
        line = json.dumps({"type": kind, **payload}, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if self._closed:
                return
            self._stream.write(line + "\n")
            self._stream.flush()

    def publish_event(self, event: DefectEvent) -> None:
        self._write("event", event.to_dict())

    def publish_result(self, result: FrameResult) -> None:
        if self._results:
            self._write("result", result.to_dict())

    def publish_stats(self, stats: Stats) -> None:
        self._write("stats", stats.to_dict())

    def publish_state(self, state: State) -> None:
        self._write("state", state.to_dict())

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        pass  # the snapshot file name is already in the event

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._stream.flush()

    def __enter__(self) -> JsonLinesOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
