"""A standing subscription to the fleet: the latest report and availability of every station.

``FleetWatch`` keeps one paho client connected to the broker (it connects in the background and
subscribes again after every reconnect, so a broker restart only pauses it) and holds the newest
``StationView`` per device behind a lock; ``views()`` is a snapshot that later messages do not
change. ``pi-inspect fleet status`` watches for a moment, the fleet page for as long as it runs;
``StationView.condition`` says what a station's status is.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pi_inspect.edge.fleet.report import SCHEMA
from pi_inspect.edge.fleet.rollout import RECORD_TOPIC, parse_record

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

KEEPALIVE_S = 30
RECONNECT_S = (1, 30)  # the first retry after a second, then doubling up to this
RETAINED_AFTER_SUBACK_S = 0.5  # how long after the broker's answer a retained message may lag


@dataclass
class StationView:
    """One station as the broker shows it: its retained availability and latest report."""

    device: str
    availability: str | None = None  # online, offline (its last will), stopped; None: unknown
    report: dict[str, Any] | None = None
    expected: bool = False  # named in the inventory
    problems: list[str] = field(default_factory=list)  # what is wrong with its latest report

    def condition(self, now: float, stale_s: float) -> str:
        """``ok``, ``fault``, ``stale`` (no report for ``stale_s`` while online), ``offline``,
        ``stopped``, ``missing`` (in the inventory, never seen) or ``unknown``."""
        if self.report is None and self.availability is None:
            return "missing" if self.expected else "unknown"
        if self.availability in ("offline", "stopped"):
            return self.availability
        if self.report is None:
            return "unknown"
        if now - float(self.report.get("at") or 0) > stale_s:
            return "stale"
        health = self.report.get("health")
        return "fault" if isinstance(health, dict) and health.get("verdict") == "fault" else "ok"


class FleetWatch:
    """The stations under ``prefix`` on the broker at ``host``:``port``; ``start()`` connects in
    the background, ``close()`` (idempotent) disconnects; a context manager that starts and
    closes."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        prefix: str = "pi-inspect",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self._depth = len(prefix.split("/"))
        self._lock = threading.Lock()
        self._views: dict[str, StationView] = {}
        self._record: dict[str, Any] | None = None  # the rollout's, from <prefix>/rollout
        self._connected = False
        self._settled = threading.Event()  # the first connection attempt has an outcome
        self._subscribed = threading.Event()  # the broker answered the subscriptions
        self._error: str | None = None
        self._started = self._closed = False
        import paho.mqtt.client as mqtt  # here: importing this module stays cheap

        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pi-inspect-fleet-{time.time_ns()}"
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(*RECONNECT_S)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    @property
    def error(self) -> str | None:
        """Why the last connection attempt failed; None once connected."""
        with self._lock:
            return self._error

    def start(self) -> FleetWatch:
        """Connect in the background; a broker not there yet is retried until ``close()``."""
        with self._lock:
            if self._started or self._closed:
                return self
            self._started = True
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Wait for the first connection attempt's outcome; whether the watch is connected."""
        self._settled.wait(timeout)
        return self.connected

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        """Publish retained at QoS 1 on the same connection (a rollout's desired states) and
        wait until the broker has it; ``ConnectionError`` when it does not take it in time."""
        info = self._client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise ConnectionError(f"broker {self.address} did not take {topic}: {exc}") from None
        if not info.is_published():
            raise ConnectionError(f"broker {self.address} did not take {topic} in {timeout:g} s")

    def views(self) -> dict[str, StationView]:
        """Every station seen, by device id (sorted): copies, safe to keep and change."""
        with self._lock:
            return {
                name: replace(view, problems=list(view.problems))
                for name, view in sorted(self._views.items())
            }

    def rollout(self) -> dict[str, Any] | None:
        """The newest rollout record on the broker (``rollout.parse_record``), or None."""
        with self._lock:
            return json.loads(json.dumps(self._record)) if self._record else None

    def wait_record(self, timeout: float) -> dict[str, Any] | None:
        """The rollout record: waits (``timeout`` at most) until the broker has answered the
        subscriptions, and a little more for the retained record that follows the answer."""
        self._subscribed.wait(timeout)
        deadline = time.monotonic() + RETAINED_AFTER_SUBACK_S
        while (record := self.rollout()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return record

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = self._started
        if started:
            self._client.disconnect()
            self._client.loop_stop()

    def __enter__(self) -> FleetWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # paho's callbacks, on its network thread

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:  # fmt: skip
        if reason.is_failure:
            with self._lock:
                self._connected, self._error = False, f"refused: {reason}"
        else:
            topics = [
                (f"{self.prefix}/+/report", 1),
                (f"{self.prefix}/+/availability", 1),
                (f"{self.prefix}/{RECORD_TOPIC}", 1),
            ]
            client.subscribe(topics)  # retained messages come after the broker's answer
            with self._lock:
                self._connected, self._error = True, None
        self._settled.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this inside its ``except OSError``
        with self._lock:
            self._connected = False
            self._error = f"not reachable: {exc}" if exc is not None else "not reachable"
        self._settled.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:  # fmt: skip
        with self._lock:
            self._connected = False
            if not self._closed:
                self._error = f"connection lost: {reason}"

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        levels = message.topic.split("/")
        if len(levels) == self._depth + 1 and levels[-1] == RECORD_TOPIC:
            self._take_record(message.payload)
            return
        if len(levels) != self._depth + 2:
            return
        device, kind = levels[self._depth], levels[self._depth + 1]
        with self._lock:
            view = self._views.setdefault(device, StationView(device))
            if kind == "availability":
                view.availability = message.payload.decode(errors="replace") or None
            elif not message.payload:  # the retained report was cleared
                view.report, view.problems = None, []
            else:
                report, problem = _read_report(message.payload)
                if report is not None:
                    view.report = report
                view.problems = [problem] if problem else []
            if view.report is None and view.availability is None and not view.problems:
                del self._views[device]  # both retained messages cleared: gone from the broker

    def _take_record(self, payload: bytes) -> None:
        try:
            record = parse_record(json.loads(payload)) if payload else None
        except (ValueError, TypeError, KeyError, RecursionError):  # not ours to act on: ignored
            return
        with self._lock:
            self._record = record


def _read_report(payload: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The report, or None and what is wrong with it."""
    try:
        report = json.loads(payload)
    except (ValueError, RecursionError):
        return None, "report is not JSON"
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        found = report.get("schema") if isinstance(report, dict) else "?"
        return None, f"report schema {found} (this tool reads {SCHEMA})"
    at = report.get("at")
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        return None, "report has no time (at)"
    return report, None
