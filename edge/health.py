"""What a part reports when the daemon polls it: named faults and numbers for the stats line.

Parts that can fail on their own (the MQTT output and its spool, the snapshot store) never call
into the daemon. They keep their own state and answer ``health()``; the daemon's loop polls
them every ``POLL_S`` on its own thread and folds the answer into its fault registry (amber LED,
``State.fault``, one log line when a fault starts and one when it ends) and into ``Stats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

POLL_S = 0.5


@dataclass(frozen=True)
class Health:
    """``faults``: every fault name the part owns -> its one-line message, or None while it is
    not faulted (so the poller knows what to clear). ``stats``: numbers for ``Stats.extra``."""

    faults: dict[str, str | None] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Reports(Protocol):
    """A part the daemon polls. ``health()`` is cheap, thread-safe and never raises."""

    def health(self) -> Health: ...
