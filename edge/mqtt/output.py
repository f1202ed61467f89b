"""The MQTT ``Output``: hands everything to background threads so the inference loop never waits.

Threads and what they own:

- the caller (inference loop): ``publish_event`` writes the event to the spool (the one
  synchronous, durable step) and wakes the sender; the other ``publish_*`` keep the latest value.
- ``mqtt-sender``: publishes the latest state/stats/result/snapshot, discovery configs, and
  spooled events in sequence order, at most ``max_inflight`` unacknowledged at a time.
- paho's network thread: connects with backoff, calls ``on_connect`` (subscribe, ``online``)
  and ``on_publish`` (deletes the acknowledged spool row).
- ``mqtt-commands``: runs validated commands on the controller and replies on ``cmd/result``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.events import DefectEvent, FrameResult, State, Stats
from edge.health import Health
from edge.mqtt.commands import CommandHandler
from edge.mqtt.config import MqttConfig
from edge.mqtt.discovery import discovery_messages
from edge.mqtt.link import Link
from edge.mqtt.spool import Spool
from edge.mqtt.topics import ONLINE, STOPPED, Topics
from edge.outputs import Controller

log = logging.getLogger(__name__)

CPU_TEMP_PATH = Path("/sys/class/thermal/thermal_zone0/temp")
_IDLE_WAKE_S = 0.5  # also the period of the acknowledgement sweep


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def read_cpu_temp_c(path: Path = CPU_TEMP_PATH) -> float | None:
    """The SoC temperature in degrees Celsius where the kernel exposes it, else None."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


@dataclass
class _Inflight:
    seq: int
    info: Any  # paho MessageInfo
    generation: int  # connection it was published on


class _Latest:
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


class MqttOutput:
    """Publishes daemon results on MQTT; see docs/mqtt.md for topics and payloads."""

    def __init__(
        self,
        config: MqttConfig,
        controller: Controller,
        spool: Spool,
        client: Any,
        sw_version: str = "",
        flush_timeout_s: float = 3.0,
    ) -> None:
        self._config = config
        self._controller = controller
        self._spool = spool
        self._client = client
        self._sw_version = sw_version
        self._flush_timeout_s = flush_timeout_s  # what is left stays spooled for the next start
        self.topics = Topics(config.prefix, config.device_id)
        self._ha_status_topic = f"{config.discovery.prefix}/status"
        self._handler = CommandHandler(controller, enabled=config.commands.enabled)

        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._link = Link(
            config.host, config.port, (config.reconnect_min_s, config.reconnect_max_s)
        )
        self._close_lock = threading.Lock()
        self._closed = False

        self._generation = 0
        self._inflight: dict[int, _Inflight] = {}
        self._inflight_lock = threading.Lock()
        self._acked: list[int] = []  # acknowledged spool rows, deleted by the sender in a batch
        self._cursor = 0  # last spool sequence handed to paho (sender thread only)
        self._spool_dirty = threading.Event()  # new event, acknowledgement or reconnect
        self._spool_dirty.set()  # a restart replays what the last run left

        self._state = _Latest()
        self._last_state: State | None = None  # re-published after every (re)connect
        self._state_generation = 0  # connection the state was last published on
        self._stats = _Latest()
        self._result = _Latest()
        self._snapshot = _Latest()
        self._discovery_due = threading.Event()
        self._last_result_at = float("-inf")
        self._result_period = 1.0 / config.result.max_rate_hz
        self._next_stats_at = float("-inf")

        self._commands: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=16)
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._commander = threading.Thread(
            target=self._command_loop, name="mqtt-commands", daemon=True
        )

        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> MqttOutput:
        """Connect in the background (never blocks; paho retries with backoff)."""
        self._sender.start()
        self._commander.start()
        self._client.connect_async(self._config.host, self._config.port, self._config.keepalive)
        self._client.loop_start()
        return self

    def close(self) -> None:
        """Flush briefly, publish ``stopped``, disconnect cleanly (no last will). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._drain(self._flush_timeout_s)
        self._stop.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout=5.0)
        if self._commander.is_alive():
            self._commands.put(None)
            self._commander.join(timeout=5.0)
        if self._connected.is_set():
            try:
                info = self._client.publish(self.topics.availability, STOPPED, qos=1, retain=True)
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish 'stopped': %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._sweep_acknowledged()  # acknowledged rows the sender had not deleted yet
        self._spool.close()

    def _drain(self, timeout_s: float) -> None:
        """On a clean exit, give spooled events a moment to be acknowledged (if connected)."""
        deadline = time.monotonic() + timeout_s
        while self._connected.is_set() and self._spool.depth > 0 and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)

    def __enter__(self) -> MqttOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    def health(self) -> Health:
        """Fault ``spool`` while events cannot be written to disk; spool counts and whether the
        broker is connected. Polled by the daemon; never raises."""
        spool = self._spool.health()
        return Health(
            faults={"spool": spool.fault},
            stats={
                "spool_depth": spool.depth,
                "spool_dropped": spool.dropped,
                "spool_unpersisted": spool.unpersisted,
                "spool_moved_aside": spool.moved_aside,
                "mqtt_connected": self._connected.is_set(),
            },
        )

    # -- Output protocol (called from the inference loop: must not block) -------------------

    def publish_event(self, event: DefectEvent) -> None:
        self._spool.append(self.topics.defect(event.label), _json(event.to_dict()))
        self._spool_dirty.set()
        self._wake_sender()

    def publish_result(self, result: FrameResult) -> None:
        if not self._config.result.enabled:
            return
        now = time.monotonic()
        if now - self._last_result_at < self._result_period:
            return
        self._last_result_at = now
        self._result.put(result)
        self._wake_sender()

    def publish_stats(self, stats: Stats) -> None:
        self._stats.put(stats)
        if time.monotonic() >= self._next_stats_at:  # else the sender would only put it back
            self._wake_sender()

    def publish_state(self, state: State) -> None:
        self._state.put(state)
        self._wake_sender()

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        if self._config.snapshot:
            self._snapshot.put(bytes(jpeg))
            self._wake_sender()

    def _wake_sender(self) -> None:
        # Event.set() takes a lock and notifies; skip it while a wake-up is already pending.
        if not self._wake.is_set():
            self._wake.set()

    # -- paho callbacks (paho's network thread) ---------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._link.down(f"refused: {reason_code}")
            return
        self._link.up()
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        if self._config.commands.enabled:
            client.subscribe(self.topics.command_filter, qos=1)
        if self._config.discovery.enabled:
            client.subscribe(self._ha_status_topic, qos=1)
            self._discovery_due.set()
        with self._inflight_lock:
            self._generation += 1
        self._spool_dirty.set()
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        self._link.down()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._stop.is_set():
            self._link.closed()
        else:
            self._link.down(str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Called with paho's message lock held: no paho calls here, only our own bookkeeping.
        # The row is deleted by the sender in a batch: the spool lock stays free for
        # publish_event on the inference thread.
        with self._inflight_lock:
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                self._acked.append(entry.seq)
        if entry is not None:
            self._wake_sender()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._ha_status_topic:
            if message.payload == ONLINE.encode():
                self._discovery_due.set()
                self._wake.set()
            return
        verb = self.topics.command_verb(message.topic)
        if verb is None or not self._config.commands.enabled:
            return
        if message.retain:  # an old command kept by the broker, not one sent now
            self._clear_retained(message.topic, verb)
            return
        if not message.payload:  # how a retained message is cleared: not a command
            return
        try:
            self._commands.put_nowait((verb, bytes(message.payload)))
        except queue.Full:
            self._reply({"command": verb, "ok": False, "error": "busy", "result": {}})

    def _clear_retained(self, topic: str, verb: str) -> None:
        """Never run a retained command (it would run again on every reconnect, and an old
        threshold would override a newer one after a broker restart); clear it on the broker."""
        log.warning(
            "ignored a retained %s command on %s (commands run only when sent); cleared it",
            verb,
            topic,
        )
        self._client.publish(topic, b"", qos=1, retain=True)
        self._reply(
            {"command": verb, "ok": False, "error": "retained command ignored", "result": {}}
        )

    # -- commands thread --------------------------------------------------------------------

    def _command_loop(self) -> None:
        while not self._stop.is_set():
            item = self._commands.get()
            if item is None:
                return
            verb, payload = item
            reply = self._handler.handle(verb, payload)
            self._reply(reply.to_dict())

    def _reply(self, payload: dict[str, Any]) -> None:
        self._client.publish(self.topics.command_result, _json(payload), qos=1)

    # -- sender thread ----------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_IDLE_WAKE_S)
            self._wake.clear()
            if self._stop.is_set():
                continue
            try:
                self._sweep_acknowledged()
                if not self._connected.is_set():
                    continue
                self._publish_latest()
                self._publish_spooled()
            except Exception:  # keep publishing whatever one message did
                log.exception("MQTT sender error")

    def _sweep_acknowledged(self) -> None:
        """Delete acknowledged rows in one batch: those ``on_publish`` reported and those whose
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
        topics, client = self.topics, self._client
        if self._discovery_due.is_set():
            self._discovery_due.clear()
            self._publish_discovery()
        state = self._state.take()
        if state is not None:
            self._last_state = state
        # Also after a reconnect: a restarted broker may have lost the retained state.
        stale = self._state_generation != self._generation
        if self._last_state is not None and (state is not None or stale):
            payload = _json(self._last_state.to_dict())
            client.publish(topics.state, payload, qos=1, retain=True)
            self._state_generation = self._generation
        now = time.monotonic()
        if now >= self._next_stats_at:
            stats = self._stats.take()
            if stats is not None:
                client.publish(topics.stats, _json(self._complete_stats(stats).to_dict()), qos=0)
                self._next_stats_at = now + self._config.stats_interval_s
        result = self._result.take()
        if result is not None:
            client.publish(topics.result, _json(result.to_dict()), qos=0)
        snapshot = self._snapshot.take()
        if snapshot is not None:
            client.publish(topics.snapshot, snapshot, qos=0, retain=True)

    def _complete_stats(self, stats: Stats) -> Stats:
        temp = stats.cpu_temp_c if stats.cpu_temp_c is not None else read_cpu_temp_c()
        return dataclasses.replace(
            stats,
            spool_depth=self._spool.depth,
            spool_dropped=self._spool.dropped,
            cpu_temp_c=temp,
        )

    def _publish_discovery(self) -> None:
        labels = tuple(self._controller.labels)
        for topic, payload in discovery_messages(
            self.topics, self._config.discovery.prefix, labels, self._sw_version
        ):
            self._client.publish(topic, _json(payload), qos=1, retain=True)

    def _publish_spooled(self) -> None:
        """Hand spooled events to paho in sequence order, keeping at most max_inflight open.

        After a reconnect paho itself re-sends what was in flight; new events wait until those
        are acknowledged so the broker sees the spool in order.
        """
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
            if not self._connected.is_set():
                return
            info = self._client.publish(message.topic, message.payload, qos=self._config.qos)
            with self._inflight_lock:
                self._inflight[info.mid] = _Inflight(message.seq, info, generation)
            self._cursor = message.seq
