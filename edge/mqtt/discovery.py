"""Home Assistant MQTT discovery: retained config messages so the device appears by itself.

One device per station (a device of several stations has several), with one ``binary_sensor`` per alarm condition the data set declared (``length absent``: on while
the label is active in ``state``; its meaning in the name), none for a label that never
alarms; sensors for
fps and latency from ``stats``, all tied to the availability topic. Home Assistant announces
``<discovery prefix>/status`` = ``online`` when it starts; the output then publishes these again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pi_inspect.edge.data.meanings import LabelMeaning
from pi_inspect.edge.mqtt.topics import ONLINE, Topics

_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def _object_id(text: str) -> str:
    """Home Assistant node/object ids allow ``[A-Za-z0-9_-]`` only."""
    return _SAFE_ID.sub("_", text)


def discovery_messages(
    topics: Topics,
    discovery_prefix: str,
    labels: tuple[str, ...],
    sw_version: str,
    meanings: Mapping[str, LabelMeaning] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config payload) for every entity of this device; ``meanings`` (the model's
    declaration) says which labels alarm and on what (default: each alarms when present)."""
    # One Home Assistant device per station when the device has several.
    named = topics.device_id if topics.station is None else f"{topics.device_id} {topics.station}"
    node = _object_id(named)
    device = {
        "identifiers": [f"pi-inspect-{node}"],
        "name": f"pi-inspect {named}",
        "manufacturer": "pi-inspect",
        "model": "seam inspection",
        "sw_version": sw_version,
    }
    common = {
        "availability": [
            {
                "topic": topics.availability,
                # "stopped" (clean exit) is as unavailable as "offline" (crash).
                "value_template": f"{{{{ 'online' if value == '{ONLINE}' else 'offline' }}}}",
            }
        ],
        "device": device,
    }
    messages: list[tuple[str, dict[str, Any]]] = []
    for label in labels:
        declared = (meanings or {}).get(label, LabelMeaning("present"))
        condition = declared.condition(label)
        if condition is None:
            continue
        name = f"{condition}: {declared.meaning}" if declared.meaning else condition
        oid = _object_id(label)
        messages.append(
            (
                f"{discovery_prefix}/binary_sensor/{node}/{oid}/config",
                {
                    **common,
                    "name": name,
                    "unique_id": f"pi-inspect-{node}-defect-{oid}",
                    "device_class": "problem",
                    "state_topic": topics.state,
                    "value_template": (
                        f"{{{{ 'ON' if {json.dumps(label)} in value_json.active else 'OFF' }}}}"
                    ),
                },
            )
        )
    sensors = [
        ("fps", "frame rate", "fps", "{{ value_json.fps | round(1) }}"),
        ("latency_p50", "latency p50", "ms", "{{ value_json.latency_p50_ms | round(1) }}"),
        ("latency_p95", "latency p95", "ms", "{{ value_json.latency_p95_ms | round(1) }}"),
    ]
    for oid, name, unit, template in sensors:
        messages.append(
            (
                f"{discovery_prefix}/sensor/{node}/{oid}/config",
                {
                    **common,
                    "name": name,
                    "unique_id": f"pi-inspect-{node}-{oid}",
                    "state_topic": topics.stats,
                    "unit_of_measurement": unit,
                    "state_class": "measurement",
                    "value_template": template,
                },
            )
        )
    return messages
