"""Sparkplug B for Ignition-based plants: the station as an edge node with one device.

Why a second MQTT session: Sparkplug B needs NDEATH as the MQTT last will of the session that
published NBIRTH, and the station's MQTT session already spends its one last will on its
retained ``availability`` message. So the Sparkplug publisher is its own paho session to the
same broker with the same connection settings (``[mqtt]`` host, port, TLS, credentials); its
client id is the main one plus ``-spb`` and its will is NDEATH.

Topics (``<node>`` is ``sparkplug.edge_node``, by default the ``[device] id``)::

    spBv1.0/<group_id>/NBIRTH|NDATA|NDEATH/<node>
    spBv1.0/<group_id>/DBIRTH|DDATA|DDEATH/<node>/<device>
    spBv1.0/<group_id>/NCMD/<node>                      (subscribed: Node Control/Rebirth)

Sequence: before every MQTT CONNECT ``bdSeq`` goes up by one (mod 256, from 0) and the will is
set to an NDEATH carrying it. On connect the node publishes NBIRTH (``seq`` 0, the ``bdSeq``
metric) and DBIRTH with every device metric; each later NDATA, DDATA, DBIRTH and DDEATH takes
the next ``seq`` (mod 256). A state, stats line or part result gives a DDATA of just the
metrics that changed (NDATA for the node's own, the CPU temperature). A new label needs new
metrics, which Sparkplug allows only in a birth: the node is reborn (NBIRTH and DBIRTH again,
same ``bdSeq``, as for a ``Node Control/Rebirth`` command). The ``Parts/*`` counters count
the part results this publisher was given since the daemon started. A clean close publishes
DDEATH and NDEATH, then disconnects (so the broker drops the will). Births and data go out at
QoS 0 as the specification says, NDEATH at QoS 1.

Never blocks the inference loop: paho queues each publish for its own network thread, and
nothing is published while the session is down (the next birth carries the current values).

Metric names, types and values: :mod:`pi_inspect.edge.mqtt.sparkplug_metrics`; the one output
that feeds both MQTT and Sparkplug: :mod:`pi_inspect.edge.mqtt.sparkplug_fanout`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.health import Health
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.sparkplug_metrics import (
    BDSEQ,
    REBIRTH,
    Changes,
    MetricStore,
    ms,
)
from pi_inspect.edge.mqtt.sparkplug_payload import (
    UINT64,
    MalformedPayload,
    Metric,
    decode_command,
    encode_payload,
)
from pi_inspect.edge.parts import PartResult

log = logging.getLogger(__name__)

NAMESPACE = "spBv1.0"


@dataclass(frozen=True)
class SparkplugTopics:
    """Every Sparkplug topic of one edge node and its one device."""

    group_id: str
    edge_node: str
    device: str

    def node(self, kind: str) -> str:
        """``spBv1.0/<group>/<kind>/<node>`` (NBIRTH, NDATA, NDEATH, NCMD)."""
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node}"

    def of_device(self, kind: str) -> str:
        """``spBv1.0/<group>/<kind>/<node>/<device>`` (DBIRTH, DDATA, DDEATH)."""
        return f"{self.node(kind)}/{self.device}"


def sparkplug_topics(config: MqttConfig, device: str) -> SparkplugTopics:
    spb = config.sparkplug
    return SparkplugTopics(spb.group_id, spb.edge_node or device, spb.device)


def sparkplug_client_id(config: MqttConfig, device: str) -> str:
    """The main session's client id plus ``-spb`` (shortened to fit 64 characters)."""
    main = config.client_id or f"pi-inspect-{device}"[:64]
    return f"{main[:60]}-spb"


class _Outage:
    """One warning per outage of the Sparkplug session, not one per retry."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reported = False

    def up(self) -> None:
        self._reported = False

    def down(self, reason: str) -> None:
        if not self._reported:
            self._reported = True
            log.warning(
                "Sparkplug B session to %s:%d down (%s); retrying", self._host, self._port, reason
            )


class SparkplugOutput:
    """Publishes the station as a Sparkplug B edge node on its own paho session."""

    def __init__(
        self,
        config: MqttConfig,
        topics: SparkplugTopics,
        client: Any,
        sw_version: str = "",
        clock: Callable[[], float] = time.time,
        close_timeout_s: float = 2.0,
    ) -> None:
        self._config = config
        self.topics = topics
        self._client = client
        self._clock = clock
        self._close_timeout_s = close_timeout_s
        self._lock = threading.Lock()  # values, seq and the order of publishes on the wire
        self._close_lock = threading.Lock()
        self._closed = False
        self._bdseq = -1  # the next CONNECT takes bdSeq + 1 (so the first session has 0)
        self._seq = 0
        self._born = False  # connected and NBIRTH sent: data may follow
        self._outage = _Outage(config.host, config.port)
        self._ncmd_sub: int | None = None
        self._listening = threading.Event()
        self._store = MetricStore(sw_version)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> SparkplugOutput:
        """Connect in the background (never blocks; paho retries with backoff)."""
        self._client.connect_async(self._config.host, self._config.port, self._config.keepalive)
        self._client.loop_start()
        return self

    def close(self) -> None:
        """DDEATH and NDEATH (if born), then a clean disconnect (no will). Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        info = None
        with self._lock:
            was_born, self._born = self._born, False
            if was_born:
                try:
                    self._publish(self.topics.of_device("DDEATH"), [], seq=self._next_seq())
                    info = self._client.publish(
                        self.topics.node("NDEATH"), self._ndeath(), qos=1, retain=False
                    )
                except (RuntimeError, ValueError) as exc:
                    log.warning("Sparkplug: could not publish DDEATH/NDEATH: %s", exc)
        if info is not None:
            try:
                info.wait_for_publish(timeout=self._close_timeout_s)
            except (RuntimeError, ValueError) as exc:
                log.warning("Sparkplug: NDEATH not acknowledged: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> SparkplugOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def born(self) -> bool:
        """Connected, NBIRTH and DBIRTH published: data goes out from now on."""
        return self._born

    @property
    def listening(self) -> bool:
        """The broker acknowledged the NCMD subscription: a Rebirth sent now arrives."""
        return self._listening.is_set()

    @property
    def bdseq(self) -> int:
        """The ``bdSeq`` of the current (or last attempted) session."""
        return max(self._bdseq, 0)

    def health(self) -> Health:
        return Health(stats={"sparkplug_connected": self._born})

    # -- Output protocol (the inference loop: never blocks) ---------------------------------
    def publish_state(self, state: State) -> None:
        self._update(self._store.take_state, state)

    def publish_stats(self, stats: Stats) -> None:
        self._update(self._store.take_stats, stats)

    def publish_part(self, result: PartResult) -> None:
        self._update(self._store.take_part, result)

    def publish_event(self, event: DefectEvent) -> None: ...

    def publish_result(self, result: FrameResult) -> None: ...

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None: ...

    # -- metrics ----------------------------------------------------------------------------
    def _update(self, take: Callable[[Any], Changes], value: Any) -> None:
        """``take`` ``value`` into the metrics; publish the changed ones if born."""
        with self._lock:
            changes = take(value)
            if not self._born or self._closed:
                return
            if changes.new:  # a new metric: only a birth may carry it
                self._birth()
                return
            now = ms(self._clock())
            node, device = self._store.data(changes, now)
            if node:
                self._publish(self.topics.node("NDATA"), node, self._next_seq(), now)
            if device:
                self._publish(self.topics.of_device("DDATA"), device, self._next_seq(), now)

    # -- publishing (inside self._lock) -----------------------------------------------------
    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _publish(
        self, topic: str, metrics: list[Metric], seq: int | None, timestamp: int | None = None
    ) -> None:
        stamp = ms(self._clock()) if timestamp is None else timestamp
        self._client.publish(topic, encode_payload(stamp, metrics, seq), qos=0, retain=False)

    def _ndeath(self) -> bytes:
        return encode_payload(ms(self._clock()), [Metric(BDSEQ, UINT64, self._bdseq)])

    def _birth(self) -> None:
        """NBIRTH (seq 0, this session's bdSeq) and DBIRTH with every metric's current value."""
        now = ms(self._clock())
        self._seq = 0
        node, device = self._store.birth(self._bdseq, now)
        self._publish(self.topics.node("NBIRTH"), node, seq=self._next_seq(), timestamp=now)
        self._publish(self.topics.of_device("DBIRTH"), device, seq=self._next_seq(), timestamp=now)
        self._born = True

    # -- paho callbacks (paho's network thread) ---------------------------------------------
    def _on_pre_connect(self, client: Any, userdata: Any) -> None:
        """Every CONNECT is a new session: the next bdSeq, and the NDEATH will that carries it."""
        with self._lock:
            self._bdseq = (self._bdseq + 1) % 256
            client.will_set(self.topics.node("NDEATH"), self._ndeath(), qos=1, retain=False)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._outage.down(f"refused: {reason_code}")
            return
        self._outage.up()
        log.info(
            "Sparkplug B edge node %s/%s connected (bdSeq %d)",
            self.topics.group_id,
            self.topics.edge_node,
            self._bdseq,
        )
        self._listening.clear()
        _, self._ncmd_sub = client.subscribe(self.topics.node("NCMD"), qos=1)
        with self._lock:
            if not self._closed:
                self._birth()

    def _on_connect_fail(self, client, userdata) -> None:
        self._outage.down("unreachable")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            self._born = False
        self._listening.clear()
        if not self._closed:
            self._outage.down(str(reason_code))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._ncmd_sub and not any(code.is_failure for code in reason_codes):
            self._listening.set()

    def _on_message(self, client, userdata, message) -> None:
        """``Node Control/Rebirth`` = true: NBIRTH and DBIRTH again; anything else is ignored."""
        if message.topic != self.topics.node("NCMD"):
            return
        try:
            metrics = decode_command(message.payload)
        except MalformedPayload as exc:
            log.debug("Sparkplug: ignored a malformed NCMD payload: %s", exc)
            return
        if metrics.get(REBIRTH) is not True:
            return
        with self._lock:
            if self._born and not self._closed:
                log.info("Sparkplug: rebirth requested")
                self._birth()


def make_sparkplug(config: MqttConfig, device: str, sw_version: str = "") -> SparkplugOutput:
    """A started Sparkplug B publisher for station ``device`` with ``config``'s connection.

    Raises ``ConfigError`` (one line, no secret) if a TLS or credentials file is unusable.
    """
    from pi_inspect.edge.mqtt.client import build_client
    from pi_inspect.edge.mqtt.topics import Topics

    own = config.model_copy(update={"client_id": sparkplug_client_id(config, device)})
    client = build_client(own, Topics(config.prefix, device))  # its will is set per CONNECT
    topics = sparkplug_topics(config, device)
    return SparkplugOutput(config, topics, client, sw_version=sw_version).start()
