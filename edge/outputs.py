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
    """A validated request: ``snapshot``, ``trigger``, ``reload``, ``thresholds`` or
    ``acknowledge``."""

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


@dataclass(frozen=True)
class LiveFrame:
    """A captured frame offered to a live viewer, with the model's output if it was inspected."""

    image: Any  # BGR uint8 array as captured (not copied), or None when ``jpeg`` holds it
    index: int
    timestamp: float  # unix time of capture
    scores: dict[str, float] | None = None  # None: not inspected (trigger mode, no model)
    heat: Any = None  # float32 [h, w] in [0, 1] for ``heat_label``, only when asked for
    heat_label: str | None = None
    roi: tuple[float, float, float, float] | None = None  # the inspected region, as fractions
    jpeg: bytes | None = None  # the camera's own JPEG of ``image`` (sent as is: no re-encoding)


class FrameTap(Protocol):
    """What an output that shows live frames offers (as its ``frame_tap`` attribute).

    The daemon asks ``wants_frame()`` for every captured frame (it must be cheap: true only
    while someone watches and the next frame of the viewer's rate is due) and only then builds a
    ``LiveFrame``; a heat map (an extra model run) only when ``wants_heat()`` says so.
    """

    def wants_frame(self) -> bool: ...

    def wants_heat(self) -> bool: ...

    def offer_frame(self, frame: LiveFrame) -> None: ...


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
