"""Reject pulses: the relay fires for each rejected part as it passes the ejector.

The camera sees a part at its trigger; the ejector sits downstream, so the part reaches it a fixed
travel time later (``reject.delay_ms``), however long the inspection took. ``Rejector`` is an
output: it takes part results and pulses the relay ``delay_s`` after each ``ng`` part's trigger
(``PartResult.trigger_clock``, the station's monotonic clock) for ``pulse_s``, in trigger order,
from one worker thread. A result that arrives after its part's due time is counted ``late`` and
not fired: the part has already passed the ejector, and a pulse then would eject whichever part is
there instead. Overlapping pulses merge: the relay stays on until the later one ends, and each
counts as a pulse. It never calls back into the daemon; ``health()`` reports its numbers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.health import Health

if TYPE_CHECKING:
    from pi_inspect.edge.events import DefectEvent, FrameResult, State, Stats
    from pi_inspect.edge.parts import PartResult

log = logging.getLogger(__name__)

FAULT = "reject"


class Rejector:
    """Pulses ``relay`` (a gpiozero output device, which it owns from now on: ``close()`` turns
    it off and closes it) for each rejected part, ``delay_s`` after its trigger, for ``pulse_s``.

    Due times come from ``clock`` (the clock ``trigger_clock`` was read from); the worker waits
    for them in real time, so ``clock`` should run at real speed (``time.monotonic``).

    A pulse lasts ``pulse_s`` from the moment it actually starts, so a worker woken a little late
    still gives the ejector its full pulse. A pulse due while the relay is on (parts closer
    together than ``pulse_s``) keeps it on until ``pulse_s`` after its own start: one longer
    on-time, two pulses counted.
    """

    def __init__(
        self,
        relay: Any,
        *,
        delay_s: float,
        pulse_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not delay_s >= 0:
            raise ValueError(f"delay_s must be >= 0, not {delay_s!r}")
        if not pulse_s > 0:
            raise ValueError(f"pulse_s must be > 0, not {pulse_s!r}")
        self._relay = relay
        self._delay_s, self._pulse_s, self._clock = delay_s, pulse_s, clock
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, int]] = []  # (due, arrival, acq_id): a heap
        self._arrival = itertools.count()
        self._off_at: float | None = None  # while the relay is on: when it goes off
        self._pulses = 0
        self._late = 0
        self._fault: str | None = None
        self._closed = False
        self._write(False)
        self._worker = threading.Thread(target=self._run, name="reject", daemon=True)
        self._worker.start()

    @classmethod
    def open(
        cls,
        pin: int,
        *,
        pin_factory: Any = None,
        active_high: bool = True,
        delay_s: float,
        pulse_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Rejector:
        """A rejector on a new ``DigitalOutputDevice`` at ``pin`` (idle off) on ``pin_factory``
        (None: gpiozero's default, as ``Signals`` does)."""
        from gpiozero import DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        try:
            relay = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise PiInspectError(f"reject relay on GPIO {pin} is not available ({exc})") from None
        return cls(relay, delay_s=delay_s, pulse_s=pulse_s, clock=clock)

    # -- parts --------------------------------------------------------------------------------
    def publish_part(self, result: PartResult) -> None:
        """Schedule a pulse for an ``ng`` part, or count it late when its due time has passed."""
        if result.verdict != "ng":
            return
        due = result.trigger_clock + self._delay_s
        with self._cond:
            if self._closed:
                return
            overdue = self._clock() - due
            if overdue > 0:
                self._late += 1
            else:
                heapq.heappush(self._queue, (due, next(self._arrival), result.acq_id))
                self._cond.notify()
        if overdue > 0:
            log.warning(
                "part %d: its result came %.0f ms after the reject was due; not ejected",
                result.acq_id,
                overdue * 1000.0,
            )

    # -- the worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                start = self._queue[0][0] if self._queue else math.inf
                stop = self._off_at if self._off_at is not None else math.inf
                now = self._clock()
                if min(start, stop) > now:
                    timeout = None if math.isinf(min(start, stop)) else min(start, stop) - now
                    self._cond.wait(timeout)
                elif start <= stop:  # a pulse due when the last one ends extends it
                    heapq.heappop(self._queue)
                    if self._off_at is None:
                        self._write(True)
                        # timed from when the relay is on: the pulse is never short of pulse_s
                        self._off_at = self._clock() + self._pulse_s
                    else:
                        self._off_at = max(self._off_at, max(start, now) + self._pulse_s)
                    self._pulses += 1
                else:
                    self._write(False)
                    self._off_at = None

    def _write(self, on: bool) -> None:
        try:
            self._relay.on() if on else self._relay.off()
        except Exception as exc:  # each pin factory raises its own; the worker must go on
            if self._fault is None:
                log.error("reject relay: %s", exc)
            self._fault = f"reject relay: {exc}"
        else:
            self._fault = None

    # -- what the daemon asks -----------------------------------------------------------------
    def health(self) -> Health:
        with self._cond:
            stats = {"pulses": self._pulses, "late": self._late, "pending": len(self._queue)}
            return Health(faults={FAULT: self._fault}, stats={"reject": stats})

    def close(self) -> None:
        """Stop the worker, drop the pulses not yet started, relay off and closed. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=2.0)
        with self._cond:
            self._write(False)
            self._off_at = None
            try:
                self._relay.close()
            except Exception as exc:  # a half-open device must not block shutdown
                log.debug("closing the reject relay: %s", exc)

    def __enter__(self) -> Rejector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the rest of the Output protocol: nothing to do ---------------------------------------
    def publish_event(self, event: DefectEvent) -> None:
        pass

    def publish_result(self, result: FrameResult) -> None:
        pass

    def publish_stats(self, stats: Stats) -> None:
        pass

    def publish_state(self, state: State) -> None:
        pass

    def publish_snapshot(self, jpeg: bytes, event: DefectEvent) -> None:
        pass
