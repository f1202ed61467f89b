"""The MQTT ``Output``: hands everything to background threads so the inference loop never waits.

Threads and what they own:

- the caller (inference loop): ``publish_event`` writes the event to the spool (the one
  synchronous, durable step) and wakes the sender; the other ``publish_*`` keep the latest value.
- ``mqtt-sender`` (``pi_inspect.edge.mqtt.sender``): publishes the latest values and spooled events.
- paho's network thread: connects with backoff and runs the callbacks below.
- ``mqtt-commands``: validates each command, passes it to the receiver the dispatcher
  subscribed, and replies on ``cmd/result``. The output never holds the daemon: the labels a
  ``thresholds`` command is checked against come from the last ``State`` it was given.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.health import Health
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.link import Link
from pi_inspect.edge.mqtt.sender import Sender, to_json
from pi_inspect.edge.mqtt.spool import Spool
from pi_inspect.edge.mqtt.topics import ONLINE, STOPPED, Topics
from pi_inspect.edge.outputs import Receiver, Reply
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.verbs import answer

log = logging.getLogger(__name__)


def _no_receiver(command) -> Reply:
    return Reply(command.verb, False, "not ready")


class MqttOutput:
    """Publishes daemon results on MQTT; see docs/mqtt.md for topics and payloads."""

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        spool: Spool,
        client: Any,
        sw_version: str = "",
        flush_timeout_s: float = 3.0,
        identity: dict[str, Any] | None = None,
        stations: tuple[str, ...] = (),
    ) -> None:
        self._config = config
        self._spool = spool
        self._client = client
        self._flush_timeout_s = flush_timeout_s  # what is left stays spooled for the next start
        self.topics = topics
        # With several stations each has its topics under <device>/<station>/; one keeps today's.
        self._several = len(stations) > 1
        self._ha_status_topic = f"{config.discovery.prefix}/status"
        self._sender = Sender(config, self.topics, spool, client, sw_version, identity)
        for station in stations:  # in config order: the first one's fills the fleet report
            self._sender.board(self._key(station))
        self._receiver: Receiver = _no_receiver
        self._labels: dict[str | None, tuple[str, ...]] = {}  # per station, from its last State
        self._command_sub: int | None = None  # the mid of the command subscription in flight
        self._listening = threading.Event()  # the broker acknowledged the command subscription
        self._closed = False
        self._close_lock = threading.Lock()
        self._last_result_at: dict[str | None, float] = {}  # per station: its own result rate
        self._result_period = 1.0 / config.result.max_rate_hz
        self._commands: queue.Queue[tuple[str | None, str, bytes] | None] = queue.Queue(maxsize=16)
        self._commander = threading.Thread(
            target=self._command_loop, name="mqtt-commands", daemon=True
        )
        self._link = Link(
            config.host, config.port, (config.reconnect_min_s, config.reconnect_max_s)
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> MqttOutput:
        """Connect in the background (never blocks; paho retries with backoff)."""
        self._sender.start()
        self._commander.start()
        self._client.connect_async(self._config.host, self._config.port, self._config.keepalive)
        self._client.loop_start()
        return self

    def subscribe(self, receiver: Receiver) -> None:
        """Commands from now on go to ``receiver`` (the daemon's dispatcher)."""
        self._receiver = receiver

    def close(self) -> None:
        """Flush briefly, publish ``stopped``, disconnect cleanly (no last will). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._drain(self._flush_timeout_s)
        self._sender.stop()
        if self._commander.is_alive():
            self._commands.put(None)
            self._commander.join(timeout=5.0)
        if self.connected:
            try:
                info = self._client.publish(self.topics.availability, STOPPED, qos=1, retain=True)
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish 'stopped': %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._sender.sweep()  # acknowledged rows the sender had not deleted yet
        self._spool.close()

    def _drain(self, timeout_s: float) -> None:
        """On a clean exit, give spooled events a moment to be acknowledged (if connected)."""
        deadline = time.monotonic() + timeout_s
        while self.connected and self._spool.depth > 0 and time.monotonic() < deadline:
            self._sender.wake()
            time.sleep(0.02)

    def __enter__(self) -> MqttOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._sender.connected.is_set()

    @property
    def listening(self) -> bool:
        """The broker acknowledged the command subscription: commands sent now arrive."""
        return self._listening.is_set()

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
                "mqtt_connected": self.connected,
            },
        )

    # -- Output protocol (called from the inference loop: must not block) -------------------
    def _key(self, station: str | None) -> str | None:
        """The station level of the topics (None: a device of one station, today's topics)."""
        return station if self._several else None

    def publish_event(self, event: DefectEvent) -> None:
        topics = self.topics.of_station(self._key(event.station))
        self._spool.append(topics.defect(event.label), to_json(event.to_dict()))
        self._sender.spooled()

    def publish_part(self, result: PartResult) -> None:
        """Every part's one result, spooled as events are: a PLC gateway misses none."""
        topics = self.topics.of_station(self._key(result.station))
        self._spool.append(topics.part, to_json(result.to_dict()))
        self._sender.spooled()

    def publish_result(self, result: FrameResult) -> None:
        if not self._config.result.enabled:
            return
        now, key = time.monotonic(), self._key(result.station)
        if now - self._last_result_at.get(key, float("-inf")) < self._result_period:
            return
        self._last_result_at[key] = now
        self._sender.board(key).result.put(result)
        self._sender.wake()

    def publish_stats(self, stats: Stats) -> None:
        self._sender.board(self._key(stats.station)).stats.put(stats)
        self._sender.wake()

    def publish_state(self, state: State) -> None:
        key = self._key(state.station)
        self._labels[key] = state.model.labels if state.model is not None else ()
        self._sender.board(key).state.put(state)
        self._sender.wake()

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        if self._config.snapshot:
            self._sender.board(self._key(event.station)).snapshot.put(bytes(jpeg))
            self._sender.wake()

    # -- paho callbacks (paho's network thread) ---------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._link.down(f"refused: {reason_code}")
            return
        self._link.up()
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        self._listening.clear()
        if self._config.commands.enabled:
            t = self.topics
            wanted = t.stations_command_filter if self._several else t.command_filter
            _, self._command_sub = client.subscribe(wanted, qos=1)
        if self._config.discovery.enabled:
            client.subscribe(self._ha_status_topic, qos=1)
        client.subscribe(self.topics.desired, qos=1)  # the fleet's, retained ([fleet] decides)
        self._sender.on_connected()

    def _on_connect_fail(self, client, userdata) -> None:
        self._link.down()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._command_sub and not any(code.is_failure for code in reason_codes):
            self._listening.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._sender.connected.clear()
        self._listening.clear()
        if self._closed:
            self._link.closed()
        else:
            self._link.down(str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._sender.acknowledged(mid)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self._ha_status_topic:
            if message.payload == ONLINE.encode():
                self._sender.discovery_due()
            return
        if message.topic == self.topics.desired:  # retained by design: applied once per change
            if message.payload:
                self._queue_command(None, "desired", bytes(message.payload))
            return
        target = self.topics.command_target(message.topic)
        if target is None or not self._config.commands.enabled:
            return
        station, verb = target
        if message.retain:  # an old command kept by the broker, not one sent now
            self._clear_retained(message.topic, verb, station)
            return
        if not message.payload:  # how a retained message is cleared: not a command
            return
        self._queue_command(station, verb, bytes(message.payload))

    def _queue_command(self, station: str | None, verb: str, payload: bytes) -> None:
        try:
            self._commands.put_nowait((station, verb, payload))
        except queue.Full:
            self._reply(Reply(verb, False, "busy"), station)

    def _clear_retained(self, topic: str, verb: str, station: str | None = None) -> None:
        """Never run a retained command (it would run again on every reconnect, and an old
        threshold would override a newer one after a broker restart); clear it on the broker."""
        log.warning(
            "ignored a retained %s command on %s (commands run only when sent); cleared it",
            verb,
            topic,
        )
        self._client.publish(topic, b"", qos=1, retain=True)
        self._reply(Reply(verb, False, "retained command ignored"), station)

    # -- commands thread --------------------------------------------------------------------
    def _command_loop(self) -> None:
        while True:
            item = self._commands.get()
            if item is None:
                return
            station, verb, payload = item
            labels = self._labels.get(station, ())
            self._reply(answer(verb, payload, labels, self._receiver, station=station), station)

    def _reply(self, reply: Reply, station: str | None = None) -> None:  # beside its command
        topic = self.topics.of_station(station).command_result
        self._client.publish(topic, to_json(reply.to_dict()), qos=1)
