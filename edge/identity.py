"""The station's identity: ``[device] id``, the name a fleet, MQTT topics and every event,
state and stats line know it by.

It defaults to the host name (the Pi's name is the natural one) made into a valid MQTT topic
level, since topics carry it: ``<prefix>/<device>/...``.
"""

from __future__ import annotations

import re
import socket
from typing import Annotated

from pydantic import AfterValidator, Field

from pi_inspect.edge.section import Section

_FORBIDDEN_IN_LEVEL = re.compile(r"[+#/\x00]")


def topic_level(value: str) -> str:
    """Check that ``value`` can be one MQTT topic level: non-empty, no ``+ # /`` or NUL."""
    if not value:
        raise ValueError("must not be empty")
    if _FORBIDDEN_IN_LEVEL.search(value):
        raise ValueError(f"{value!r} is not a valid topic level (no '+', '#', '/')")
    if len(value.encode()) > 128:
        raise ValueError("must be at most 128 bytes")
    return value


def topic_prefix(value: str) -> str:
    """Check a topic prefix: one or more valid levels joined by ``/``, no empty level."""
    if not value:
        raise ValueError("must not be empty")
    for level in value.split("/"):
        topic_level(level)
    return value


def default_device_id() -> str:
    """The hostname, made into a valid topic level (the Pi's name is the natural device id)."""
    name = _FORBIDDEN_IN_LEVEL.sub("-", socket.gethostname()).strip() or "pi-inspect"
    return name[:64]


TopicLevel = Annotated[str, AfterValidator(topic_level)]
TopicPrefix = Annotated[str, AfterValidator(topic_prefix)]


class DeviceConfig(Section):
    """Who this station is."""

    # This station's name in topics, events, state and stats (default: the host name).
    id: TopicLevel = Field(default_factory=default_device_id)
