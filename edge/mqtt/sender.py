"""The ``mqtt-sender`` thread: pumps the spool and the latest values to paho.

- Defect events: spooled (durable) by the caller, handed to paho in sequence order with at most
  ``max_inflight`` unacknowledged; after a reconnect paho re-sends what was in flight and new
  events wait for those, so the broker sees the spool in order.
- Acknowledgements: paho's thread only records them (``acknowledged``); the sender deletes the
  acknowledged rows in one batch (the sweep), so the spool lock stays free for the caller.
- State (retained, re-published after every reconnect), stats, results and snapshots: the newest value wins; Home Assistant discovery when due.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pi_inspect.edge.data.meanings import LabelMeaning
from pi_inspect.edge.events import FrameResult, ModelInfo, State, Stats
from pi_inspect.edge.fleet.report import station_report
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.discovery import discovery_messages
from pi_inspect.edge.mqtt.spool import Spool
from pi_inspect.edge.mqtt.topics import Topics

log = logging.getLogger(__name__)

IDLE_WAKE_S = 0.5  # also the period of the acknowledgement sweep


def to_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class _Inflight:
    seq: int
    info: Any  # paho MessageInfo
    generation: int  # connection it was published on


class Latest:
    """The newest value of a non-event message, taken once by the sender (newest wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Any = None

    def put(self, value: Any) -> None:
        with self._lock:
            self._value = value

    def take(self) -> Any:
        with self._lock:
            value, self._value = self._value, None
            return value


class Board:
    """One station's latest values and what was last published of them."""

    def __init__(self, topics: Topics, discover: bool = False) -> None:
        self.topics = topics
        self.discovery_due = discover  # Home Assistant's configs are (re)published when due
        self.state = Latest()
        self.stats = Latest()
        self.result = Latest()
        self.snapshot = Latest()
        self.last_state: State | None = None  # re-published after every (re)connect
        self.last_stats: Stats | None = None
        self.state_generation = 0  # connection the state was last published on
        self.discovered: tuple[str, ...] | None = None  # labels the discovery configs name
        self.stats_fresh = False  # a stats line went out in the sender's last round


class Sender:
    """Owns the publishing side of one MQTT connection (see the module docstring)."""

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        spool: Spool,
        client: Any,
        sw_version: str = "",
        identity: dict[str, Any] | None = None,
    ) -> None:
        self._config = config
        self._topics = topics
        self._spool = spool
        self._client = client
        self._sw_version = sw_version
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()

        self._generation = 0
        self._inflight: dict[int, _Inflight] = {}
        self._inflight_lock = threading.Lock()
        self._acked: list[int] = []  # acknowledged spool rows, deleted by the sender in a batch
        self._cursor = 0  # last spool sequence handed to paho (sender thread only)
        self._spool_dirty = threading.Event()  # new event, acknowledgement or reconnect
        self._spool_dirty.set()  # a restart replays what the last run left

        self._boards: dict[str | None, Board] = {}  # per station (None: a device of one)
        self._boards_lock = threading.Lock()
        self._identity = identity if identity is not None else {"version": sw_version}
        self._report_generation = 0  # connection the report was last published on
        self._discovery_due = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mqtt-sender", daemon=True)

    # -- from other threads -------------------------------------------------------------------
    def board(self, station: str | None = None) -> Board:
        """The latest values of ``station`` (its topics when given; None: the device's own)."""
        board = self._boards.get(station)
        if board is None:
            with self._boards_lock:
                board = self._boards.setdefault(
                    station,
                    Board(self._topics.of_station(station), self._config.discovery.enabled),
                )
        return board

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def wake(self) -> None:
        # Event.set() takes a lock and notifies; skip it while a wake-up is already pending.
        if not self._wake.is_set():
            self._wake.set()

    def spooled(self) -> None:
        """A new event is in the spool."""
        self._spool_dirty.set()
        self.wake()

    def on_connected(self) -> None:
        """paho connected (again): replay in order, re-publish state and discovery."""
        with self._inflight_lock:
            self._generation += 1
        if self._config.discovery.enabled:
            self._discovery_due.set()
        self._spool_dirty.set()
        self.connected.set()
        self._wake.set()

    def discovery_due(self) -> None:
        if self._config.discovery.enabled:
            self._discovery_due.set()
            self._wake.set()

    def acknowledged(self, mid: int) -> None:
        """paho's thread, with its message lock held: only our own bookkeeping here."""
        with self._inflight_lock:
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                self._acked.append(entry.seq)
        if entry is not None:
            self.wake()

    # -- the sender thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(IDLE_WAKE_S)
            self._wake.clear()
            if self._stop.is_set():
                continue
            try:
                self.sweep()
                if not self.connected.is_set():
                    continue
                self._publish_latest()
                self._publish_spooled()
            except Exception:  # keep publishing whatever one message did
                log.exception("MQTT sender error")

    def sweep(self) -> None:
        """Delete acknowledged rows in one batch: those paho reported and those whose
        acknowledgement raced with the bookkeeping after ``publish()``."""
        if not self._inflight and not self._acked:
            return
        with self._inflight_lock:
            done = [mid for mid, e in self._inflight.items() if e.info.is_published()]
            seqs = self._acked + [self._inflight.pop(mid).seq for mid in done]
            self._acked = []
        if seqs:
            self._spool.remove_many(seqs)
            self._spool_dirty.set()

    def _publish_latest(self) -> None:
        with self._boards_lock:
            boards = list(self._boards.values())
            if self._discovery_due.is_set():
                self._discovery_due.clear()
                for board in boards:
                    board.discovery_due = True
        for board in boards:
            self._publish_board(board)
        first = boards[0] if boards else None  # the fleet follows the first station
        if (
            first is not None
            and first.last_stats is not None
            and (first.stats_fresh or self._report_generation != self._generation)
        ):  # with each stats line, and again after a reconnect (retained, for the fleet)
            report = station_report(
                self._topics.device_id, self._identity, first.last_state, first.last_stats,
                time.time(),
            )  # fmt: skip
            self._client.publish(self._topics.report, to_json(report), qos=1, retain=True)
            self._report_generation = self._generation

    def _publish_board(self, board: Board) -> None:
        topics, client = board.topics, self._client
        state: State | None = board.state.take()
        if state is not None:
            board.last_state = state
        model = board.last_state.model if board.last_state is not None else None
        labels = model.labels if model is not None else ()
        if board.discovery_due or (board.discovered is not None and labels != board.discovered):
            board.discovery_due = False
            self._publish_discovery(board, labels, model)
        # Also after a reconnect: a restarted broker may have lost the retained state.
        stale = board.state_generation != self._generation
        if board.last_state is not None and (state is not None or stale):
            client.publish(topics.state, to_json(board.last_state.to_dict()), qos=1, retain=True)
            board.state_generation = self._generation
        stats: Stats | None = board.stats.take()
        board.stats_fresh = stats is not None
        if stats is not None:  # the spool's numbers are in extra: the daemon polls health()
            client.publish(topics.stats, to_json(stats.to_dict()), qos=0)
            board.last_stats = stats
        result: FrameResult | None = board.result.take()
        if result is not None:
            client.publish(topics.result, to_json(result.to_dict()), qos=0)
        snapshot = board.snapshot.take()
        if snapshot is not None:
            client.publish(topics.snapshot, snapshot, qos=0, retain=True)

    def _publish_discovery(
        self, board: Board, labels: tuple[str, ...], model: ModelInfo | None
    ) -> None:
        """Home Assistant configs for ``labels``, named by their alarm conditions; again
        whenever a reload changes them."""
        board.discovered = labels
        meanings = (
            {label: LabelMeaning(alarm, meaning) for label, alarm, meaning in model.meanings}
            if model is not None and model.meanings
            else None
        )
        for topic, payload in discovery_messages(
            board.topics, self._config.discovery.prefix, labels, self._sw_version, meanings
        ):
            self._client.publish(topic, to_json(payload), qos=1, retain=True)

    def _publish_spooled(self) -> None:
        if not self._spool_dirty.is_set():
            return
        with self._inflight_lock:
            generation = self._generation
            if any(e.generation != generation for e in self._inflight.values()):
                return
            room = self._config.max_inflight - len(self._inflight)
        if room <= 0:
            return
        self._spool_dirty.clear()
        for message in self._spool.after(self._cursor, room):
            if not self.connected.is_set():
                return
            info = self._client.publish(message.topic, message.payload, qos=self._config.qos)
            with self._inflight_lock:
                self._inflight[info.mid] = _Inflight(message.seq, info, generation)
            self._cursor = message.seq
