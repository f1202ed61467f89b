"""What the station shows: named faults + the labels raised now -> one ``State``; LEDs follow.

Any part may raise or clear a fault by name, from any thread::

    status.faults.set("spool", "spool unwritable: disk full")
    status.faults.clear("spool")

A fault is a state, never an exit: while any is set the verdict is ``fault`` (amber LED, the
messages joined in ``State.fault``). The registry logs one line when a fault starts and one
when it ends; a fault whose message changes while it is set stays one fault (no new line).
The daemon names ``model``, ``camera`` and ``inference``; other parts choose their own names.
Parts that must not call into the daemon (the MQTT spool, the snapshot store) keep their own
state and answer ``health()``; the loop polls them and ``fold_health`` sets or clears their
faults (``spool``, ``snapshots``) here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any

from pi_inspect.edge.decide import Rule
from pi_inspect.edge.events import ModelInfo, State, Verdict
from pi_inspect.edge.health import Reports
from pi_inspect.edge.signals import Signals

log = logging.getLogger(__name__)


CAMERA_FAULT = "camera"  # set while the capture worker is offline


class Faults:
    """Named faults, each one line of text. Thread-safe; reading is cheap (the loop polls)."""

    def __init__(self, on_start: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}
        self._on_start = on_start

    def set(self, name: str, message: str, *, logged: bool = False) -> None:
        """Raise fault ``name`` (or update its message); logs only when it starts, unless the
        part that found it has ``logged`` that line itself."""
        message = message.splitlines()[0] if message else name
        with self._lock:
            started = name not in self._active
            self._active[name] = message
        if started:
            if not logged:
                log.warning("fault: %s", message)
            if self._on_start is not None:
                self._on_start(message)

    def clear(self, name: str, *, logged: bool = False) -> None:
        """End fault ``name``, if it is set; logs only when it ends (unless ``logged``)."""
        with self._lock:
            message = self._active.pop(name, None)
        if message is not None and not logged:
            log.info("fault cleared: %s", message)

    def active(self) -> dict[str, str]:
        """The faults set now, name -> message, in the order they started."""
        with self._lock:
            return dict(self._active)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._active

    def message(self) -> str | None:
        """Every active fault's message joined by ``; ``, or None when there is none."""
        with self._lock:
            return "; ".join(self._active.values()) if self._active else None


class Status:
    """Folds faults, the raised labels and the camera into a ``State`` and drives the LEDs."""

    def __init__(
        self,
        faults: Faults | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self._wall = wall
        self._signals: Signals | None = None
        self._state: State | None = None
        self._latched: dict[str, None] = {}  # conditions raised since the latch was set, in order

    def drive(self, signals: Signals | None) -> None:
        """Show every later verdict on ``signals`` (None: no LEDs)."""
        self._signals = signals

    @property
    def state(self) -> State | None:
        return self._state

    def update(
        self,
        *,
        model: ModelInfo | None,
        active: tuple[str, ...],
        camera_online: bool,
        new_defect: bool = False,
        rules: Mapping[str, Rule] | None = None,
    ) -> State | None:
        """Show the verdict on the LEDs; returns the new ``State`` if it changed, else None."""
        fault = self.faults.message()
        verdict: Verdict = "fault" if fault else ("defect" if active else "ok")
        if not fault and not camera_online:
            verdict = "starting"
        if self._signals is not None and verdict != "starting":
            self._signals.show(fault=fault is not None, defect=bool(active), new_defect=new_defect)
        rules = rules or {}
        thresholds = {label: rule.threshold for label, rule in rules.items()}
        alarms = {label: rule.direction for label, rule in rules.items()}
        lamps = asdict(self._signals.lamps) if self._signals is not None else {}
        conditions = tuple(model.condition(label) for label in active) if model else active
        latched = self._latch(conditions)
        old = self._state
        same_verdict = old is not None and (old.verdict, old.active, old.fault, old.model) == (
            verdict,
            active,
            fault,
            model,
        )
        same_rest = old is not None and (old.thresholds, old.alarms, old.lamps, old.latched) == (
            thresholds,
            alarms,
            lamps,
            latched,
        )
        if same_verdict and same_rest:
            return None
        since = old.since if same_verdict else self._wall()  # only what comes with it changed
        self._state = State(
            verdict, active, model, since, fault, thresholds, alarms, lamps, conditions, latched
        )
        return self._state

    def _latch(self, conditions: tuple[str, ...]) -> tuple[str, ...]:
        """The conditions a latched red LED and relay show: every one raised since the latch
        was set, until it is acknowledged (the LEDs know whether it is; the labels are here)."""
        if self._signals is None or not self._signals.latched:
            self._latched.clear()
            return ()
        for condition in conditions:
            self._latched.setdefault(condition)
        return tuple(self._latched)

    def camera(self, online: bool, fault: str | None) -> None:
        """The capture thread's report, as it happens (the worker logs its own lines)."""
        if not online and fault:
            self.faults.set(CAMERA_FAULT, fault, logged=True)
        else:
            self.faults.clear(CAMERA_FAULT, logged=True)

    def acknowledge(self) -> None:
        """The operator has seen it (as the acknowledge button): a latched red goes off; the
        next ``update`` shows it in the state."""
        if self._signals is not None:
            self._signals.acknowledge()

    def close(self) -> None:
        if self._signals is not None:
            self._signals.close()


def fold_health(parts: Iterable[Reports], faults: Faults) -> dict[str, Any]:
    """Ask each part for its ``health()``: set or clear the faults it names, and return the
    numbers for the stats line. A part that fails to answer is skipped, never fatal."""
    numbers: dict[str, Any] = {}
    for part in parts:
        try:
            health = part.health()
        except Exception as exc:  # a part's bug must not stop inspection
            log.debug("no health from %s: %s", type(part).__name__, exc)
            continue
        for name, message in health.faults.items():
            if message:
                faults.set(name, message)
            else:
                faults.clear(name)
        numbers.update(health.stats)
    return numbers
