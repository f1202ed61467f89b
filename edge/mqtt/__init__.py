"""MQTT output: paho-mqtt 2.x, an on-disk SQLite spool, commands, Home Assistant discovery.

The daemon builds it with :func:`make_output`; topics and payloads are in docs/mqtt.md.
Importing this package is cheap (paho is imported when an output is made).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pi_inspect.edge.mqtt.config import MqttConfig
    from pi_inspect.edge.mqtt.output import MqttOutput
    from pi_inspect.edge.mqtt.sparkplug_fanout import SparkplugFanOut

__all__ = ["make_output"]


def make_output(
    config: MqttConfig,
    state_dir: Path,
    device: str,
    camera: str = "",
    stations: tuple[str, ...] = (),
) -> MqttOutput | SparkplugFanOut:
    """A started MQTT output (connecting in the background) for station ``device`` (its topic
    level), with its spool in ``state_dir``.

    Commands it receives go nowhere until a receiver is subscribed (``subscribe``).

    With ``sparkplug.enabled`` it also starts the Sparkplug B publisher (its own session to the
    same broker) and returns both as one output that sends everything to each.

    Raises ``ConfigError`` (one line, no secret) if a TLS or credentials file is unusable.
    The caller decides whether ``config.enabled``; this builds the output regardless.
    """
    from pi_inspect.edge import __version__
    from pi_inspect.edge.mqtt.client import build_client
    from pi_inspect.edge.mqtt.output import MqttOutput
    from pi_inspect.edge.mqtt.spool import Spool
    from pi_inspect.edge.mqtt.topics import Topics

    topics = Topics(config.prefix, device)
    client = build_client(config, topics)
    spool = Spool(config.spool_path(state_dir), config.spool.max_events, config.spool.durable)
    from pi_inspect.edge.fleet.report import machine_identity

    identity = {**machine_identity(), "version": __version__, "camera": camera}
    output = MqttOutput(
        config, topics, spool, client, sw_version=__version__, identity=identity,
        stations=stations,
    )  # fmt: skip
    output.start()
    if not config.sparkplug.enabled:
        return output
    from pi_inspect.edge.mqtt.sparkplug import make_sparkplug
    from pi_inspect.edge.mqtt.sparkplug_fanout import SparkplugFanOut

    try:
        sparkplug = make_sparkplug(config, device, sw_version=__version__)
    except BaseException:
        output.close()
        raise
    return SparkplugFanOut(output, sparkplug, stations[0] if len(stations) > 1 else None)
