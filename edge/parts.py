"""Parts: a trigger with an identity, and exactly one result for it.

A trigger (a GPIO edge, the PLC's trigger bit, MQTT ``cmd/trigger``, the console) gets an
acquisition ID counted by the station and, when the PLC wrote one, a part ID the result echoes.
The part is inspected on the first ``trigger.frames`` frames captured after it and ends as
exactly one ``PartResult``:

- ``ok`` or ``ng`` (with the labels that alarmed on any of its frames);
- ``error``: the model failed on its frame, or no model is loaded;
- ``missed``: no frame for it (the camera is down, too many triggers pending, or no frame
  within ``trigger.frame_timeout_ms``).

Every result also waits in ``drain()`` for the loop that sends it out. A result later than ``trigger.deadline_ms`` after its trigger is counted late and given
``trigger.late_verdict``. ``error`` and ``missed`` parts are rejected (``verdict`` is ``ng``):
a part nobody looked at never passes. Pure bookkeeping: no I/O, time from injected clocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from pi_inspect.edge.health import Health

Code = Literal["ok", "ng", "error", "missed"]
PartVerdict = Literal["ok", "ng"]
PART_ID_MAX = 2**32 - 1  # a PLC writes a 32-bit unsigned part ID (two registers)


@dataclass(frozen=True)
class Part:
    """One trigger, waiting for its frames."""

    acq_id: int
    part_id: int | None
    source: str  # "gpio", "plc", "modbus", "opcua", "mqtt", "console", ...
    clock: float  # the station's monotonic clock at the trigger
    wall: float  # unix time of the trigger: only frames captured after it count


@dataclass(frozen=True)
class PartResult:
    """What became of one part. ``to_dict()`` is the JSON of MQTT's ``part`` topic."""

    acq_id: int
    part_id: int | None
    source: str
    code: Code  # what the inspection found
    verdict: PartVerdict  # what the line does with the part (late and failed parts: see above)
    alarms: tuple[str, ...]  # labels that alarmed, model order
    scores: dict[str, float]  # per label, the highest over the part's frames
    frames: tuple[int, ...]  # the frame indexes inspected for it
    processing_ms: float  # the model's own work for it (prepare + invoke), summed
    latency_ms: float  # trigger to result
    late: bool
    triggered_at: float  # unix time of the trigger
    model: str | None = None  # the identity of the model that judged it
    reason: str | None = None  # why ``error`` or ``missed``
    device: str | None = None  # set when it is sent
    station: str | None = None  # which of the device's stations, set when it is sent
    trigger_clock: float = field(default=0.0, compare=False)  # monotonic, for reject timing

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("trigger_clock")
        d["alarms"] = list(self.alarms)
        d["frames"] = list(self.frames)
        return d


@dataclass
class _Open:
    part: Part
    needed: int
    frames: list[int] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    alarms: set[str] = field(default_factory=set)
    processing_ms: float = 0.0
    model: str | None = None


COUNTERS = ("triggers", "ok", "ng", "errors", "missed", "late")


class PartTracker:
    """Pending parts in trigger order; thread-safe (triggers come from GPIO, MQTT and PLC
    threads, frames from the inspection loop)."""

    def __init__(
        self,
        *,
        frames: int = 1,
        deadline_ms: float | None = None,
        late_verdict: Literal["ng", "ok", "result"] = "ng",
        frame_timeout_ms: float = 1000.0,
        max_pending: int = 32,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._open: list[_Open] = []
        self._done: list[PartResult] = []  # results not yet taken by ``drain``
        self._stopping: str | None = None
        self._next_acq = 1
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._worst_ms = 0.0
        self.configure(frames, deadline_ms, late_verdict, frame_timeout_ms, max_pending)

    def configure(
        self,
        frames: int,
        deadline_ms: float | None,
        late_verdict: Literal["ng", "ok", "result"],
        frame_timeout_ms: float,
        max_pending: int,
    ) -> None:
        with self._lock:
            self.frames, self.deadline_ms, self.late_verdict = frames, deadline_ms, late_verdict
            self.frame_timeout_ms, self.max_pending = frame_timeout_ms, max_pending

    # -- triggers -----------------------------------------------------------------------------
    def trigger(
        self, source: str, part_id: int | None = None, missed: str | None = None
    ) -> tuple[Part, PartResult | None]:
        """Count a trigger; its part waits for frames, or is missed at once (``missed``: why,
        such as the camera being down; or too many parts pending)."""
        with self._lock:
            part = Part(self._next_acq, part_id, source, self._clock(), self._wall())
            self._next_acq += 1
            self.counters["triggers"] += 1
            if missed is None and self._stopping:
                missed = self._stopping
            if missed is None and len(self._open) >= self.max_pending:
                missed = f"{len(self._open)} triggers already pending (trigger.max_pending)"
            if missed is not None:
                return part, self._missed(_Open(part, self.frames), missed)
            self._open.append(_Open(part, self.frames))
            return part, None

    def pending(self) -> int:
        with self._lock:
            return len(self._open)

    def wants(self, timestamp: float) -> bool:
        """Whether a frame captured at ``timestamp`` (unix) is owed to a pending part."""
        with self._lock:
            return any(o.part.wall <= timestamp for o in self._open)

    # -- outcomes -----------------------------------------------------------------------------
    def frame(
        self,
        index: int,
        timestamp: float,
        scores: dict[str, float],
        alarms: Iterable[str],
        processing_ms: float,
        model: str | None,
    ) -> list[PartResult]:
        """One inspected frame: it counts for every pending part triggered before it; the
        parts that now have all their frames are done (in trigger order)."""
        alarms = set(alarms)
        done: list[PartResult] = []
        with self._lock:
            for o in self._waiting(timestamp):
                o.frames.append(index)
                for label, score in scores.items():
                    o.scores[label] = max(score, o.scores.get(label, score))
                o.alarms |= alarms
                o.processing_ms += processing_ms
                o.model = model
                if len(o.frames) >= o.needed:
                    self._open.remove(o)
                    done.append(self._judged(o))
        return done

    def failed(self, timestamp: float, reason: str) -> list[PartResult]:
        """The frame owed to the parts triggered before ``timestamp`` could not be judged."""
        with self._lock:
            waiting = self._waiting(timestamp)
            for o in waiting:
                self._open.remove(o)
            return [self._finish(o, "error", reason) for o in waiting]

    def expire(self) -> list[PartResult]:
        """Parts that had no frame within ``frame_timeout_ms`` of their trigger: missed."""
        now = self._clock()
        with self._lock:
            stale = [o for o in self._open if (now - o.part.clock) * 1000 > self.frame_timeout_ms]
            for o in stale:
                self._open.remove(o)
            return [
                self._missed(o, f"no frame within {self.frame_timeout_ms:g} ms of the trigger")
                for o in stale
            ]

    def drain(self, expire: bool = True) -> list[PartResult]:
        """The results since the last call, in trigger order: one that ended while an older
        part still waits is held back until that one ends (a PLC pairs results with its parts
        by order). ``expire``: first end the parts whose frame timeout passed (the loop asks
        only while no captured frame waits to be inspected). The one place results leave."""
        if expire:
            self.expire()
        with self._lock:
            oldest_open = min((o.part.acq_id for o in self._open), default=None)
            self._done.sort(key=lambda result: result.acq_id)
            cut = len(self._done)
            if oldest_open is not None:
                cut = sum(1 for result in self._done if result.acq_id < oldest_open)
            done, self._done = self._done[:cut], self._done[cut:]
            return done

    def stop(self, reason: str) -> None:
        """From now on every trigger is missed at once (the station is stopping), and every
        pending part is missed now."""
        with self._lock:
            self._stopping = reason
            gone, self._open = self._open, []
            for o in gone:
                self._missed(o, reason)

    def clear_counters(self) -> None:
        with self._lock:
            self.counters = dict.fromkeys(COUNTERS, 0)
            self._worst_ms = 0.0

    def health(self) -> Health:
        with self._lock:
            stats = {**self.counters, "pending": len(self._open)}
            if self._worst_ms:
                stats["worst_latency_ms"] = round(self._worst_ms, 1)
        return Health(stats={"parts": stats})

    # -- inside the lock ----------------------------------------------------------------------
    def _waiting(self, timestamp: float) -> list[_Open]:
        return [o for o in self._open if o.part.wall <= timestamp]

    def _judged(self, o: _Open) -> PartResult:
        return self._finish(o, "ng" if o.alarms else "ok", None)

    def _missed(self, o: _Open, reason: str) -> PartResult:
        return self._finish(o, "missed", reason)

    def _finish(self, o: _Open, code: Code, reason: str | None) -> PartResult:
        latency_ms = (self._clock() - o.part.clock) * 1000.0
        judged = code in ("ok", "ng")  # error and missed parts are rejected, late or not
        late = self.deadline_ms is not None and latency_ms > self.deadline_ms and judged
        verdict: PartVerdict = "ok" if code == "ok" else "ng"
        if late and self.late_verdict != "result":
            verdict = self.late_verdict
        self.counters[{"ok": "ok", "ng": "ng", "error": "errors", "missed": "missed"}[code]] += 1
        if late:
            self.counters["late"] += 1
        self._worst_ms = max(self._worst_ms, latency_ms)
        order = list(o.scores)
        result = PartResult(
            acq_id=o.part.acq_id, part_id=o.part.part_id, source=o.part.source, code=code,
            verdict=verdict, alarms=tuple(label for label in order if label in o.alarms),
            scores={k: round(v, 6) for k, v in o.scores.items()}, frames=tuple(o.frames),
            processing_ms=round(o.processing_ms, 3), latency_ms=round(latency_ms, 3),
            late=late, triggered_at=o.part.wall, model=o.model, reason=reason,
            trigger_clock=o.part.clock,
        )  # fmt: skip
        self._done.append(result)
        return result


def stamped(result: PartResult, device: str | None) -> PartResult:
    return replace(result, device=device)
