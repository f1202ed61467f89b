"""The console's ``Output``: keeps, in memory, what the daemon dispatched for the page to show.

Every ``publish_*`` only stores (a reference, a small dict, a counter) under one lock, so the
inference loop never waits on a browser. Events are kept newest first, bounded; counts per label
and faults are totals since start (the Prometheus counters).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from pi_inspect.edge.console.live import LiveView
from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.outputs import Receiver

HISTORY = 120  # stats lines kept for the charts


class ConsoleOutput:
    """What the page shows: latest state, stats history, results, recent events (thread-safe)."""

    def __init__(
        self,
        live: LiveView,
        *,
        events_kept: int = 500,
    ) -> None:
        self.frame_tap = live
        self._lock = threading.Lock()
        self._events_kept = events_kept
        self.receiver: Receiver | None = None  # how actions reach the daemon
        self._on_close: Callable[[], None] | None = None
        self._state: State | None = None
        self._stats: Stats | None = None
        self._result: FrameResult | None = None
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()  # oldest first
        self._counts: dict[str, int] = {}
        self._faults = 0
        self._closed = False

    # -- Output protocol -----------------------------------------------------------------------
    def publish_state(self, state: State) -> None:
        with self._lock:
            old = self._state
            if state.fault and (old is None or old.fault != state.fault):
                self._faults += 1
            self._state = state

    def publish_stats(self, stats: Stats) -> None:
        point = {
            "t": time.time(),
            "fps": stats.fps,
            "latency_ms": stats.latency_p50_ms,
            "latency_p95_ms": stats.latency_p95_ms,
            "dropped": stats.dropped_frames,
            "spool_depth": stats.extra.get("spool_depth"),
            "cpu_temp_c": stats.cpu_temp_c,
        }
        with self._lock:
            self._stats = stats
            self._history.append(point)

    def publish_result(self, result: FrameResult) -> None:
        self._result = result  # one reference swap: atomic, no lock needed on the hot path

    def publish_event(self, event: DefectEvent) -> None:
        with self._lock:
            model = self._state.model if self._state is not None else None
            record = self._events.get(event.event_id)
            if record is None:
                self._counts[event.label] = self._counts.get(event.label, 0) + 1
                record = {"model": model.name if model else None, "model_version": None}
                if model is not None:
                    record["model_version"] = model.version
                self._events[event.event_id] = record
                while len(self._events) > self._events_kept:
                    self._events.popitem(last=False)
            snapshot = event.snapshot or record.get("snapshot")
            record.update(event.to_dict(), snapshot=snapshot)

    def subscribe(self, receiver: Receiver) -> None:
        """The daemon's dispatcher hands over the one way commands go back."""
        self.receiver = receiver

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        pass  # the file name comes with the event; the page fetches the file by that name

    def on_close(self, callback: Callable[[], None]) -> None:
        """``callback`` runs once when the daemon closes its outputs (it stops the server)."""
        self._on_close = callback

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._on_close is not None:
            self._on_close()

    # -- what the page and /metrics read -------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """The page's poll: state, the latest scores, the latest stats and their history."""
        with self._lock:
            state, stats = self._state, self._stats
            history = [dict(point) for point in self._history]
        result = self._result
        return {
            "state": state.to_dict() if state is not None else None,
            "result": result.to_dict() if result is not None else None,
            "stats": stats.to_dict() if stats is not None else None,
            "history": history,
            "viewers": self.frame_tap.watching(),
        }

    def events(self, page: int = 0, size: int = 10) -> dict[str, Any]:
        """Events newest first, ``size`` per page."""
        with self._lock:
            records = list(self._events.values())
        records.reverse()
        return {
            "page": page,
            "size": size,
            "total": len(records),
            "events": [dict(r) for r in records[page * size : (page + 1) * size]],
        }

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._events.get(event_id)
            return dict(record) if record is not None else None

    def counters(self) -> tuple[State | None, Stats | None, dict[str, int], int, int | None]:
        """State, stats, events per label, faults since start and the MQTT spool's depth at
        the last stats line (for /metrics)."""
        spool = self.spool_depth()
        with self._lock:
            return self._state, self._stats, dict(self._counts), self._faults, spool

    def spool_depth(self) -> int | None:
        """Events waiting in the MQTT spool at the last stats line (None without MQTT): the
        spool's own health report, which every stats line carries."""
        with self._lock:
            stats = self._stats
        depth = stats.extra.get("spool_depth") if stats is not None else None
        return depth if isinstance(depth, int) else None

    def labels(self) -> tuple[str, ...]:
        """The running model's labels (from the last state); none before a model loads."""
        with self._lock:
            state = self._state
        return tuple(state.model.labels) if state is not None and state.model else ()
