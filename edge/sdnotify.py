"""The systemd notify protocol without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

The unit runs with ``Type=notify`` and ``WatchdogSec=``: systemd waits for ``READY=1`` before it
calls the service started, and restarts it when ``WATCHDOG=1`` stops arriving. The daemon calls
``watchdog()`` from its real work loop on every iteration, so a hung loop (not merely a live
process) is what systemd detects. Outside systemd (``NOTIFY_SOCKET`` unset) every method is a
no-op, and a failed send is logged once and never raised: notification must not kill the service.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes:
    """``@name`` is a Linux abstract socket (leading NUL byte); anything else is a path."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, the clock systemd compares ``MONOTONIC_USEC`` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends ``READY=1``, ``WATCHDOG=1``, ``RELOADING=1``, ``STOPPING=1`` and ``STATUS=`` lines.

    ``watchdog()`` is cheap and rate-limits itself to half of ``WATCHDOG_USEC`` (what
    ``sd_watchdog_enabled`` advises), so it is safe to call on every loop iteration.
    """

    def __init__(
        self,
        address: str | None,
        watchdog_usec: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._clock = clock
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        self._closed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as systemd sets them.

        The watchdog is off when ``WATCHDOG_PID`` names another process (the variables were
        inherited, not meant for us) or ``WATCHDOG_USEC`` is missing or not a positive integer.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw_usec = env.get("WATCHDOG_USEC", "")
        if raw_usec.isdigit() and int(raw_usec) > 0:
            usec = int(raw_usec)
        raw_pid = env.get("WATCHDOG_PID", "")
        if raw_pid and (not raw_pid.isdigit() or int(raw_pid) != os.getpid()):
            usec = None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        """True when running under systemd with a notify socket."""
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WatchdogSec), or None when the watchdog is off."""
        return self._watchdog_interval if self.enabled else None

    def ready(self, status: str | None = None) -> None:
        """The bundle is loaded and the source is open (or a reload finished)."""
        self._send("READY=1", _status_line(status))

    def watchdog(self) -> None:
        """Ping the watchdog if half the interval has passed since the last ping."""
        if self._watchdog_interval is None or not self.enabled:
            return
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self._watchdog_interval:
            return
        self._last_ping = now
        self._send("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> None:
        """A reload (SIGHUP) started; send ``ready()`` again when it is done."""
        self._send("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}", _status_line(status))

    def stopping(self, status: str | None = None) -> None:
        """The service is shutting down on purpose."""
        self._send("STOPPING=1", _status_line(status))

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``."""
        self._send(_status_line(text))

    def extend_timeout(self, seconds: float) -> None:
        """Ask for more start/stop time (a slow bundle load on a Pi Zero)."""
        self._send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def close(self) -> None:
        """Close the socket; later calls are no-ops. Idempotent."""
        with self._lock:
            self._closed = True
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, *fields: str | None) -> None:
        """Send the given ``KEY=VALUE`` lines (None entries skipped) as one datagram."""
        if self._address is None:
            return
        payload = "\n".join(f for f in fields if f).encode()
        with self._lock:
            if self._closed:
                return
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(payload, self._address)
            except OSError as exc:
                level = logging.DEBUG if self._warned else logging.WARNING
                log.log(level, "sd_notify to %s failed: %s", self._printable_address(), exc)
                self._warned = True

    def _printable_address(self) -> str:
        addr = self._address
        if isinstance(addr, bytes):
            return "@" + addr[1:].decode(errors="replace")
        return str(addr)


def _status_line(text: str | None) -> str | None:
    """``STATUS=`` must be one line: newlines would start new protocol fields."""
    if not text:
        return None
    return "STATUS=" + " ".join(text.split())
