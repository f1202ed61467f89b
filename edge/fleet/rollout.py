"""A staged rollout: a bundle goes to the stations ring by ring, each ring first in shadow, then
promoted, and the next ring starts only when this one met its gates.

Per ring, for the stations new to it:

1. publish the desired state ``shadow`` (docs/fleet.md); every station must report it applied
   within ``apply_timeout_s`` (fetched, the bundle it names, its golden set passed);
2. soak: every station's shadow record of this bundle must reach ``min_frames`` frames and
   ``soak_s`` seconds, with agreement >= ``min_agreement`` and the candidate's alarm rate at
   most ``max_alarm_delta`` above the model in service;
3. publish ``promote``; every station must report it applied.

A gate that fails stops the rollout and rolls the ring back: its stations get ``rollback`` (the
candidate leaves shadow; a station that had promoted it goes back to its previous bundle) and the
stations of later rings are never touched. ``abort`` rolls back every station the rollout
touched.

Every step is said (``log``, ``echo``) and the rollout's record (schema 1, ``record()``) is
published retained on ``<prefix>/rollout`` after each: ``fleet status`` shows it, and
``resume`` continues an interrupted rollout from it. A step is idempotent: a station that already
applied what a ring asks of it is not asked again. Decides and publishes only through what it is
given (``publish``, ``views``), so tests drive it in-process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from pi_inspect.edge.fleet.plan import (
    ACTIVE,
    RECORD_TOPIC,
    SCHEMA,
    STATES,
    Bundle,
    Gates,
    Interrupted,
    InvalidRecord,
    Plan,
    RolloutFailed,
    parse_record,
    plan_of,
    ring_sizes,
)

__all__ = [
    "ACTIVE", "BROKER_GRACE_S", "RECORD_TOPIC", "SCHEMA", "STATES", "Bundle", "Gates",
    "Interrupted", "InvalidRecord", "Plan", "Rollout", "RolloutFailed", "parse_record", "plan_of",
    "ring_sizes",
]  # fmt: skip

log = logging.getLogger(__name__)

LOG_LINES = 40  # the record keeps the newest lines
BROKER_GRACE_S = 30.0  # the broker away this long interrupts the rollout (shorter: it waits)

Views = Callable[[], dict[str, Any]]  # device -> StationView (its .report)
Publish = Callable[[str, bytes], None]  # (topic, retained payload)


class Pacer:
    """The rollout's waits: one poll at a time, stopped by ``interrupt()`` (twice where the wait
    must not stop at the first: a rollback), and held while the broker is away."""

    def __init__(self, poll_s: float, connected: Callable[[], bool], clock: Callable[[], float],
                 sleep: Callable[[float], None] | None, say: Callable[[str], None]) -> None:  # fmt: skip
        self._poll_s, self._connected, self._clock, self._say = poll_s, connected, clock, say
        self._sleep = sleep  # None: wait on the stop event (or time.sleep where it cannot stop)
        self._stop = threading.Event()
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1
        self._stop.set()

    def pause(self, interruptible: bool) -> float:
        """Wait one poll; while the broker is away, wait for it (``BROKER_GRACE_S`` at most,
        then ``ConnectionError``). Returns the seconds spent waiting for the broker."""
        self._nap(interruptible)
        if self._connected():
            return 0.0
        gone = self._clock()
        self._say("broker away: waiting for it")
        while not self._connected():
            if self._clock() - gone > BROKER_GRACE_S:
                raise ConnectionError(f"broker away for more than {BROKER_GRACE_S:g} s")
            self._nap(interruptible)
        self._say("broker back")
        return self._clock() - gone

    def _nap(self, interruptible: bool) -> None:
        enough = 1 if interruptible else 2
        if self.interrupts >= enough:
            raise Interrupted()
        if self._sleep is not None:
            self._sleep(self._poll_s)
        elif interruptible:
            self._stop.wait(self._poll_s)
        else:
            time.sleep(self._poll_s)
        if self.interrupts >= enough:
            raise Interrupted()


class Reports:
    """What the stations report about one rollout, read from the broker's latest reports."""

    def __init__(self, views: Views, rollout_id: str, sha256: str) -> None:
        self._views, self._id, self._sha = views, rollout_id, sha256

    def report(self, station: str) -> dict[str, Any]:
        view = self._views().get(station)
        return (getattr(view, "report", None) or {}) if view is not None else {}

    def outcome(self, station: str) -> dict[str, Any] | None:
        """The station's last desired state and its outcome, if it is this rollout's."""
        outcome = self.report(station).get("desired")
        if not isinstance(outcome, dict) or outcome.get("rollout") != self._id:
            return None
        return outcome

    def applied(self, station: str, mode: str) -> bool:
        outcome = self.outcome(station)
        return (
            outcome is not None and outcome.get("mode") == mode and outcome.get("state") == "applied"
        )

    def shadow(self, station: str) -> dict[str, Any] | None:
        """The station's shadow record, if its candidate is this rollout's bundle."""
        shadow = self.report(station).get("shadow")
        if not isinstance(shadow, dict) or shadow.get("identity") != self._sha:
            return None
        return shadow


def check_shadow(station: str, shadow: dict[str, Any], gates: Gates) -> None:
    """The soak's gates on one shadow record: the alarm rate first (the line's own number: a
    candidate that rejects good parts), then the agreement with the model in service."""
    candidate, service = shadow.get("candidate_alarm_rate"), shadow.get("service_alarm_rate")
    worse = candidate is not None and service is not None and candidate - service
    if worse and worse > gates.max_alarm_delta:
        raise RolloutFailed(
            f"{station}: the candidate alarms on {candidate:.1%} of frames, the model in "
            f"service on {service:.1%} (more than {gates.max_alarm_delta:.1%} apart)"
        )
    agreement = shadow.get("agreement")
    if agreement is not None and agreement < gates.min_agreement:
        raise RolloutFailed(f"{station}: agreement {agreement:.3f} < {gates.min_agreement:g}")


class Rollout:
    """Runs one ``Plan``; ``run()`` from the start, ``resume(record)`` from where a record says
    it stopped, ``abort()`` rolls back; ``interrupt()`` (from another thread) stops it between
    steps."""

    def __init__(
        self,
        plan: Plan,
        *,
        prefix: str,
        publish: Publish,
        views: Views,
        connected: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall: Callable[[], float] = time.time,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self._prefix, self._publish = prefix, publish
        self._reports = Reports(views, plan.rollout_id, plan.bundle.sha256)
        self._clock, self._wall, self._echo = clock, wall, echo
        self._pacer = Pacer(plan.gates.poll_s, connected, clock, sleep, self._say)
        self._before: dict[str, Any] = {}  # station -> its outcome when last asked
        self.log: list[str] = []  # every step, as said
        self._lines: list[dict[str, Any]] = []  # the newest, timed, for the record
        self.state, self.ring, self.done, self.step = "running", 0, 0, ""
        self.reason: str | None = None
        self.started = wall()

    # -- what the workstation asks ----------------------------------------------------------
    @property
    def gates(self) -> Gates:
        return self.plan.gates

    def run(self) -> bool:
        """True when every ring took the bundle; False when a gate stopped it (or it was
        interrupted: ``state`` says which)."""
        return self._rings(first=1)

    def resume(self, record: dict[str, Any]) -> bool:
        """Continue the rollout ``record`` describes from its ring: the rings before it are
        done; stations of this ring that already applied a step are not asked again."""
        self.done, self.started = int(record["done"]), float(record.get("started") or self.started)
        self._lines = list(record.get("log") or [])[-LOG_LINES:]
        first = next((k for k, size in enumerate(self.plan.sizes, 1) if size > self.done), None)
        if first is None:  # parse_record refuses such a record; a hand-made one ends here
            self._finish("done", None, f"rolled out to {self.done} stations")
            return True
        self.ring = first
        self._say(f"resumed at ring {first}")
        return self._rings(first)

    def abort(self, record: dict[str, Any] | None = None) -> bool:
        """Roll back every station the rollout touched (all rings up to the current one); True
        when each one reported it."""
        if record is not None:
            self.ring, self.done = int(record["ring"]), int(record["done"])
            self._lines = list(record.get("log") or [])[-LOG_LINES:]
            self.started = float(record.get("started") or self.started)
        sizes = self.plan.sizes
        reach = max(sizes[min(max(self.ring, 1), len(sizes)) - 1], self.done)
        touched = list(self.plan.stations[:reach])
        self.state, self.reason = "aborted", "rolling back"  # never resumable from here on
        self._say(f"abort: rolling back {', '.join(touched)}")
        ok = self._roll_back(touched)
        self._finish("aborted", None if ok else "not every station confirmed the rollback")
        return ok

    def interrupt(self) -> None:
        """Stop at the next step (thread-safe); the stations keep what they were asked. While
        it rolls back it waits for the stations to confirm, unless interrupted twice."""
        self._pacer.interrupt()

    def record(self) -> dict[str, Any]:
        """What ``<prefix>/rollout`` holds (schema 1, docs/fleet.md)."""
        plan = self.plan
        return {
            "schema": SCHEMA, "id": plan.rollout_id, "bundle": asdict(plan.bundle),
            "stations": list(plan.stations), "sizes": list(plan.sizes),
            "gates": asdict(plan.gates), "state": self.state, "ring": self.ring,
            "rings": len(plan.sizes), "done": self.done, "step": self.step,
            "reason": self.reason, "started": round(self.started, 3),
            "updated": round(self._wall(), 3), "log": self._lines,
        }  # fmt: skip

    # -- the rings --------------------------------------------------------------------------
    def _rings(self, first: int) -> bool:
        for number in range(first, len(self.plan.sizes) + 1):
            self.ring = number
            stations = self.plan.ring(number)
            self._say(f"ring {number}: {', '.join(stations)}")
            try:
                self._ring(stations)
            except Interrupted:
                where = f"interrupted at ring {number} ({self.step})"
                self._finish("interrupted", where, where)
                return False
            except ConnectionError as exc:  # the broker went away: resume once it is back
                where = f"interrupted at ring {number} ({self.step}): {exc}"
                self._finish("interrupted", where, where)
                return False
            except RolloutFailed as exc:
                self.state, self.reason = "failed", str(exc)  # never resumable from here on
                self._say(f"ring {number} stopped: {exc}")
                if self._roll_back(stations):
                    self._say(f"ring {number} rolled back; later rings untouched")
                self._finish("failed", str(exc))
                return False
            self.done = self.plan.sizes[number - 1]
        self._finish("done", None, f"rolled out to {self.done} stations")
        return True

    def _ring(self, stations: list[str]) -> None:
        promoted = [s for s in stations if self._reports.applied(s, "promote")]
        rest = [s for s in stations if s not in promoted]
        if rest:
            self.step = "shadow"
            self._desire([s for s in rest if not self._reports.applied(s, "shadow")], "shadow")
            self._wait_applied(rest, "shadow")
            self.step = "soak"
            self._soak(rest)
            self.step = "promote"
            self._desire(rest, "promote")
            self._wait_applied(rest, "promote")
        self._say(f"promoted on {', '.join(stations)}")

    def _roll_back(self, stations: list[str]) -> bool:
        """``rollback`` to ``stations``, waiting (at most the apply timeout) until each says it
        applied it; a station that does not is named, and the rollout goes on stopping."""
        self.step = "rollback"
        try:
            self._desire(stations, "rollback")
            self._wait_applied(stations, "rollback", interruptible=False)
        except RolloutFailed as exc:
            self._say(f"rollback not confirmed: {exc}; --abort asks again")
            return False
        except Interrupted:
            self._say("stopped waiting for the rollback; --abort asks again")
            return False
        except ConnectionError as exc:
            self._say(f"rollback not sent: {exc}; --abort asks again once the broker is back")
            return False
        return True

    def _desire(self, stations: list[str], mode: str) -> None:
        if not stations:
            return
        bundle = asdict(self.plan.bundle)
        payload = {"schema": 1, "rollout": self.plan.rollout_id, "mode": mode, "bundle": bundle}
        for station in stations:
            self._before[station] = self._reports.outcome(station)  # until it changes, not an answer
            self._publish(f"{self._prefix}/{station}/desired", json.dumps(payload).encode())
        self._say(f"desired {mode} published to {', '.join(stations)}")

    def _wait_applied(self, stations: list[str], mode: str, interruptible: bool = True) -> None:
        deadline = self._clock() + self.gates.apply_timeout_s
        while True:
            waiting = []
            for station in stations:
                outcome = self._reports.outcome(station)
                if (
                    outcome is None
                    or outcome.get("mode") != mode
                    or outcome.get("state") == "applying"
                    or (outcome.get("state") == "failed" and outcome == self._before.get(station))
                ):  # a failure reported before it was asked again is no answer yet
                    waiting.append(station)
                elif outcome.get("state") != "applied":
                    raise RolloutFailed(f"{station} could not apply it: {outcome.get('reason')}")
            if not waiting:
                self._say(f"{mode} applied on {', '.join(stations)}")
                return
            if self._clock() > deadline:
                raise RolloutFailed(
                    f"no {mode} applied within {self.gates.apply_timeout_s:g} s on "
                    f"{', '.join(waiting)}"
                )
            deadline += self._pacer.pause(interruptible)

    def _soak(self, stations: list[str]) -> None:
        gates = self.gates
        self._say(f"soak: {gates.soak_s:g} s and {gates.min_frames} shadow frames each")
        started = self._clock()
        deadline = started + gates.soak_s + gates.apply_timeout_s
        while True:
            ready = True
            for station in stations:
                shadow = self._reports.shadow(station)
                if shadow is None or (shadow.get("frames") or 0) < gates.min_frames:
                    ready = False
                    continue
                check_shadow(station, shadow, gates)
            if ready and self._clock() - started >= gates.soak_s:
                self._say(
                    f"soaked {gates.soak_s:g} s in shadow on {', '.join(stations)}: gates met"
                )
                return
            if self._clock() > deadline:
                raise RolloutFailed(f"fewer than {gates.min_frames} shadow frames within the soak")
            away = self._pacer.pause(True)
            started += away  # time without the broker is no soak
            deadline += away

    # -- saying it --------------------------------------------------------------------------
    def _finish(self, state: str, reason: str | None, line: str | None = None) -> None:
        self.state, self.reason = state, reason
        self._say(line or f"{state}" + (f": {reason}" if reason else ""))

    def _say(self, line: str) -> None:
        self.log.append(line)
        self._lines = [*self._lines, {"at": round(self._wall(), 3), "line": line}][-LOG_LINES:]
        if self._echo is not None:
            self._echo(line)
        else:
            log.info("rollout %s: %s", self.plan.rollout_id, line)
        try:
            self._publish(f"{self._prefix}/{RECORD_TOPIC}", json.dumps(self.record()).encode())
        except ConnectionError as exc:  # the record is for people; the rollout goes on
            log.warning("rollout record not published: %s", exc)
