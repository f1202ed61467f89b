"""The MQTT output and its Sparkplug B publisher as the one output the daemon is given.

A module of its own so that :mod:`pi_inspect.edge.mqtt.sparkplug` holds only the Sparkplug
session; this one needs the two outputs' types only for the type checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
from pi_inspect.edge.health import Health
from pi_inspect.edge.outputs import Receiver
from pi_inspect.edge.parts import PartResult

if TYPE_CHECKING:
    from pi_inspect.edge.mqtt.output import MqttOutput
    from pi_inspect.edge.mqtt.sparkplug import SparkplugOutput


class SparkplugFanOut:
    """The MQTT output and its Sparkplug B publisher as one output: everything goes to both;
    commands, the spool and every other attribute are the MQTT output's. On a device of
    several stations Sparkplug B carries ``station`` only (its device is one station)."""

    def __init__(
        self, mqtt: MqttOutput, sparkplug: SparkplugOutput, station: str | None = None
    ) -> None:
        self.mqtt = mqtt
        self.sparkplug = sparkplug
        self.station = station

    def _ours(self, item: Any) -> bool:
        return self.station is None or getattr(item, "station", None) == self.station

    def __getattr__(self, name: str) -> Any:
        if name in ("mqtt", "sparkplug"):  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.mqtt, name)

    def publish_event(self, event: DefectEvent) -> None:
        self.mqtt.publish_event(event)
        if self._ours(event):
            self.sparkplug.publish_event(event)

    def publish_result(self, result: FrameResult) -> None:
        self.mqtt.publish_result(result)
        if self._ours(result):
            self.sparkplug.publish_result(result)

    def publish_stats(self, stats: Stats) -> None:
        self.mqtt.publish_stats(stats)
        if self._ours(stats):
            self.sparkplug.publish_stats(stats)

    def publish_state(self, state: State) -> None:
        self.mqtt.publish_state(state)
        if self._ours(state):
            self.sparkplug.publish_state(state)

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        self.mqtt.publish_snapshot(jpeg, event)
        if self._ours(event):
            self.sparkplug.publish_snapshot(jpeg, event)

    def publish_part(self, result: PartResult) -> None:
        publish = getattr(self.mqtt, "publish_part", None)
        if publish is not None:
            publish(result)
        if self._ours(result):
            self.sparkplug.publish_part(result)

    def subscribe(self, receiver: Receiver) -> None:
        self.mqtt.subscribe(receiver)

    def health(self) -> Health:
        main, spb = self.mqtt.health(), self.sparkplug.health()
        return Health(faults={**main.faults, **spb.faults}, stats={**main.stats, **spb.stats})

    def close(self) -> None:
        """Sparkplug first (DDEATH, NDEATH), then the MQTT output, whatever the first did."""
        try:
            self.sparkplug.close()
        finally:
            self.mqtt.close()

    def __enter__(self) -> SparkplugFanOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
