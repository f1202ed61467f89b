"""The broker connection's state: one log line per change, not one per retry.

paho reports every attempt (``on_connect``, ``on_connect_fail``, ``on_disconnect``); an outage
of hours with a retry every few seconds must not fill the journal. ``Link`` folds the callbacks
into three states and logs only a change: connected, lost (was connected) and unreachable
(not connected since the start, or refused); a failed retry during an outage changes nothing. Thread-safe: paho's thread writes, the sender and stats read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("pi_inspect.edge.mqtt")

LinkState = Literal["connecting", "connected", "down"]


class Link:
    def __init__(
        self,
        host: str,
        port: int,
        retry: tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._where = f"{host}:{port}"
        self._retry = retry
        self._clock = clock
        self._lock = threading.Lock()
        self._state: LinkState = "connecting"
        self._since = clock()

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state == "connected"

    def _move(self, state: LinkState) -> tuple[LinkState, float] | None:
        """Set the state; the old state and how long it lasted if it changed, else None."""
        with self._lock:
            old, since = self._state, self._since
            if old == state:
                return None
            self._state, self._since = state, self._clock()
            return old, self._since - since

    def up(self) -> None:
        changed = self._move("connected")
        if changed is None:
            return
        old, lasted = changed
        if old == "down":
            log.info("MQTT connected to %s again after %.0f s", self._where, lasted)
        else:
            log.info("MQTT connected to %s", self._where)

    def down(self, reason: str | None = None) -> None:
        """A connection attempt failed or an established connection ended (not by us)."""
        changed = self._move("down")
        if changed is None:
            return
        because = f" ({reason})" if reason else ""
        if changed[0] == "connected":
            log.warning(
                "MQTT connection to %s lost%s; events are kept in the spool", self._where, because
            )
            return
        lo, hi = self._retry
        log.warning(
            "MQTT broker %s unreachable%s; retrying every %g-%g s, events are kept in the spool",
            self._where,
            because,
            lo,
            hi,
        )

    def closed(self) -> None:
        """We disconnected on purpose: no line."""
        self._move("down")
