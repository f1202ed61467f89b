"""The MQTT output as a plugin: the ``[mqtt]`` section, its doctor check and its pre-flight.

Importing this is cheap (the section's model only); paho and the spool load when it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.outputs import Output, OutputContext, OutputPlugin


def _build(section: MqttConfig, context: OutputContext) -> Output:
    from pi_inspect.edge.mqtt import make_output

    return make_output(
        section, context.state_dir, context.device, camera=context.camera,
        stations=context.stations,
    )  # fmt: skip


def _doctor(section: MqttConfig, _context: OutputContext) -> list[tuple[str, Callable[[], Any]]]:
    from pi_inspect.edge.doctor import check_broker
    from pi_inspect.edge.mqtt.client import read_credentials

    creds = read_credentials(section) if section.enabled else None
    user, password = (creds.username, creds.password) if creds is not None else (None, None)
    return [
        (
            "broker",
            lambda: check_broker(section.enabled, section.host, section.port, user, password),
        )
    ]


def _preflight(section: MqttConfig, state_dir: Path) -> list[str]:
    """The spool must be a regular file (or not exist yet) where it is written."""
    from pi_inspect.edge.preflight import expand, regular_file

    if not section.enabled:
        return []
    found: list[str] = []
    spool = expand("mqtt.spool.path", str(section.spool_path(state_dir)), found)
    if spool is not None:
        regular_file("mqtt.spool.path", spool, found)
    return found


PLUGIN = OutputPlugin(
    name="mqtt",
    section=MqttConfig,
    build=_build,
    doctor=_doctor,
    preflight=_preflight,
    meanings={
        "enabled": "publish events, state and stats over MQTT",
        "host": "broker host name or address",
        "port": "broker port (8883 is usual with TLS)",
        "prefix": "first topic level(s): <prefix>/<device>/... (device: [device] id)",
        "client_id": "MQTT client id (unset: derived from the device id)",
        "tls": "TLS settings, a table with ca_file, cert_file, key_file, insecure (unset: no TLS)",
        "username": "broker user name",
        "password": "broker password (prefer credentials_file; never logged)",
        "keepalive": "seconds between MQTT keep-alive pings",
        "reconnect_min_s": "first wait before reconnecting to the broker",
        "reconnect_max_s": "longest wait between reconnect attempts",
        "max_inflight": "QoS 1 messages in flight at once",
        "result.enabled": "publish per-frame results (rate-limited)",
        "result.max_rate_hz": "most result messages per second",
        "commands.enabled": "accept commands under cmd/ (trigger, snapshot, reload, thresholds)",
        "discovery.enabled": "publish Home Assistant discovery configs",
        "discovery.prefix": "Home Assistant's discovery prefix",
        "spool.max_events": "most unsent events kept in the spool (oldest dropped first)",
        "sparkplug.enabled": "also publish Sparkplug B (spBv1.0/...) for Ignition on the same broker",
        "sparkplug.group_id": "Sparkplug group id: spBv1.0/<group_id>/...",
        "sparkplug.edge_node": "Sparkplug edge node id (unset: the [device] id)",
        "sparkplug.device": "Sparkplug device id of the inspection station under the edge node",
    },
)
