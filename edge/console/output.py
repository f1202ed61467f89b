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

from pi_inspect.edge.console.live import LiveView, LiveViews
from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.outputs import Receiver

HISTORY = 120  # stats lines kept for the charts


class Board:
    """One station's latest state, stats and scores, and the stats history for its charts."""

    def __init__(self) -> None:
        self.state: State | None = None
        self.stats: Stats | None = None
        self.result: FrameResult | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.faults = 0

    def tile(self, name: str) -> dict[str, Any]:
        """What the station's tile shows."""
        state, stats = self.state, self.stats
        return {
            "name": name,
            "verdict": state.verdict if state is not None else "starting",
            "fault": state.fault if state is not None else None,
            "active": list(state.conditions or state.active) if state is not None else [],
            "fps": stats.fps if stats is not None else None,
        }


class ConsoleOutput:
    """What the page shows, per station: latest state, stats history, results, and the
    recent events of every station (thread-safe)."""

    def __init__(
        self,
        live: LiveView | LiveViews,
        *,
        events_kept: int = 500,
        stations: tuple[str, ...] = (),
    ) -> None:
        self.frame_tap = live if isinstance(live, LiveViews) else LiveViews(LiveView, live)
        self._lock = threading.Lock()
        self._events_kept = events_kept
        self.receiver: Receiver | None = None  # how actions reach the daemon
        self._on_close: Callable[[], None] | None = None
        # per station: the configured ones in config order, then any other as it first speaks
        self._boards: dict[str, Board] = {name: Board() for name in stations}
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()  # oldest first
        self._counts: dict[tuple[str, str], int] = {}  # (station, label) -> events
        self._closed = False

    def _board(self, station: str | None) -> Board:
        """Under the lock: the board of the station that published (made on its first word)."""
        name = station or "default"
        board = self._boards.get(name)
        if board is None:
            board = self._boards[name] = Board()
        return board

    def _find(self, station: str | None) -> tuple[str | None, Board]:
        """Under the lock: ``station``'s board for a reader (None: the first station's); an
        unknown name gets an empty one, never a new entry."""
        name = station or next(iter(self._boards), None)
        board = self._boards.get(name) if name is not None else None
        return (name, board) if board is not None else (station, Board())

    # -- Output protocol -----------------------------------------------------------------------
    def publish_state(self, state: State) -> None:
        with self._lock:
            board = self._board(state.station)
            old = board.state
            if state.fault and (old is None or old.fault != state.fault):
                board.faults += 1
            board.state = state

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
            board = self._board(stats.station)
            board.stats = stats
            board.history.append(point)

    def publish_result(self, result: FrameResult) -> None:
        board = self._boards.get(result.station or "")
        if board is None:
            with self._lock:
                board = self._board(result.station)
        board.result = result  # one reference swap: atomic, no lock needed on the hot path

    def publish_event(self, event: DefectEvent) -> None:
        with self._lock:
            board = self._board(event.station)
            model = board.state.model if board.state is not None else None
            record = self._events.get(event.event_id)
            if record is None:
                key = (event.station or "default", event.label)
                self._counts[key] = self._counts.get(key, 0) + 1
                record = {"model": model.name if model else None, "model_version": None}
                if model is not None:
                    record["model_version"] = model.version
                self._events[event.event_id] = record
                while len(self._events) > self._events_kept:
                    self._events.popitem(last=False)
            snapshot = event.snapshot or record.get("snapshot")
            record.update(event.to_dict(), snapshot=snapshot)

    def subscribe(self, receiver: Receiver) -> None:
        """The daemon's hub hands over the one way commands go back."""
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
    def overview(self, station: str | None = None) -> dict[str, Any]:
        """The page's poll for ``station`` (None: the first): state, the latest scores, the
        latest stats and their history; and every station's tile."""
        with self._lock:
            name, board = self._find(station)
            state, stats = board.state, board.stats
            history = [dict(point) for point in board.history]
            tiles = [b.tile(n) for n, b in self._boards.items()]
        result = board.result
        return {
            "station": name,
            "stations": tiles,
            "state": state.to_dict() if state is not None else None,
            "result": result.to_dict() if result is not None else None,
            "stats": stats.to_dict() if stats is not None else None,
            "history": history,
            "viewers": self.frame_tap.view(name).watching() if name else 0,
        }

    def events(self, page: int = 0, size: int = 10, station: str | None = None) -> dict[str, Any]:
        """Events newest first, ``size`` per page; of one station when ``station`` is given."""
        with self._lock:
            records = [r for r in self._events.values() if station in (None, r.get("station"))]
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

    def counters(self) -> dict[str, tuple[State | None, Stats | None, dict[str, int], int]]:
        """Per station: state, stats, events per label and faults since start (for /metrics)."""
        with self._lock:
            found = {name: (b.state, b.stats, {}, b.faults) for name, b in self._boards.items()}
            for (name, label), n in self._counts.items():
                if name in found:
                    found[name][2][label] = n
        return found

    def spool_depth(self) -> int | None:
        """Events waiting in the MQTT spool at the last stats line (None without MQTT): the
        spool's own health report, which every stats line carries (the device's one spool)."""
        with self._lock:
            stats = [b.stats for b in self._boards.values() if b.stats is not None]
        depth = stats[0].extra.get("spool_depth") if stats else None
        return depth if isinstance(depth, int) else None

    def labels(self, station: str | None = None) -> tuple[str, ...]:
        """The running model's labels of ``station`` (from its last state); none before a
        model loads."""
        with self._lock:
            state = self._find(station)[1].state
        return tuple(state.model.labels) if state is not None and state.model else ()
