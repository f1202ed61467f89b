"""Where daemon results go: a small output interface (Frigate's communicator idea).

The daemon calls every configured ``Output``; each decides what to do with it. Outputs must not
block the inference loop for long: one that talks to the network queues and returns.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Protocol, TextIO, runtime_checkable

from edge.data.meanings import LabelMeaning
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


class Controller(Protocol):
    """What outputs that take commands (MQTT) may ask the daemon to do."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def meanings(self) -> dict[str, LabelMeaning]:
        """Per label: when it alarms and what it means (the model's declaration)."""

    def trigger(self) -> None:
        """Inspect the next frame now (on-demand trigger mode)."""

    def request_snapshot(self) -> str | None:
        """Save a snapshot of the latest frame; returns its file name."""

    def reload(self) -> None:
        """Reload config and bundle (as SIGHUP does); a bad bundle keeps the old one."""

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]:
        """Override per-label thresholds; returns the thresholds now in force."""


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
