"""The stdout output: events, state and stats as JSON lines (journald keeps them), a plugin like
any other (``[stdout]``)."""

from __future__ import annotations

import json
import sys
import threading
from typing import TextIO

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.outputs import OutputContext, OutputPlugin
from pi_inspect.edge.section import Section


class StdoutConfig(Section):
    """JSON lines on stdout (journald-friendly)."""

    enabled: bool = True
    results: bool = False  # also one line per inferred frame (noisy)


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


def _build(section: StdoutConfig, _context: OutputContext) -> JsonLinesOutput:
    return JsonLinesOutput(sys.stdout, results=section.results)


PLUGIN = OutputPlugin(
    name="stdout",
    section=StdoutConfig,
    build=_build,
    meanings={"enabled": "print events, state and stats as JSON lines on stdout"},
)
