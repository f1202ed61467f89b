"""A staged rollout: a bundle goes to the stations ring by ring, each ring first in shadow, then
promoted, and the next ring starts only when this one met its gates.

Per ring, for the stations new to it:

1. publish the desired state ``shadow`` (docs/fleet.md); every station must report it applied
   within ``apply_timeout_s`` (fetched, the bundle it names, its golden set passed);
2. soak: every station's shadow record of this bundle must reach ``min_frames`` frames and
   ``soak_s`` seconds, with agreement >= ``min_agreement`` and the candidate's alarm rate at
   most ``max_alarm_delta`` above the model in service;
3. publish ``promote``; every station must report it applied.

A gate that fails stops the rollout: the ring's stations get ``clear`` (the candidate leaves
shadow; they keep what they run) and the stations of later rings are never touched. Decides and
publishes only through what it is given (``publish``, ``views``), so tests drive it in-process.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gates:
    soak_s: float = 60.0
    min_frames: int = 100
    min_agreement: float = 0.95
    max_alarm_delta: float = 0.05
    apply_timeout_s: float = 300.0
    poll_s: float = 0.5


@dataclass(frozen=True)
class Bundle:
    name: str
    sha256: str  # the manifest's content sha256: the bundle's identity
    url: str


class RolloutFailed(RuntimeError):
    """A gate failed; the message says which station and why."""


def ring_sizes(spec: str, total: int) -> list[int]:
    """``"1,10%,50%,100%"`` for ``total`` stations -> the cumulative station counts of the
    rings (each at least one more than the last, the last at most ``total``)."""
    sizes: list[int] = []
    for item in spec.split(","):
        item = item.strip()
        share = item.endswith("%")
        count = math.ceil(float(item[:-1]) / 100.0 * total) if share else int(item)
        count = min(count, total)
        if count <= (sizes[-1] if sizes else 0):
            continue
        sizes.append(count)
    if not sizes:
        raise ValueError(f"rings {spec!r} name no station")
    return sizes


Views = Callable[[], dict[str, Any]]  # device -> StationView (its .report)
Publish = Callable[[str, bytes], None]  # (topic, retained payload)


class Rollout:
    def __init__(
        self,
        rollout_id: str,
        bundle: Bundle,
        stations: Sequence[str],
        rings: str,
        gates: Gates,
        *,
        prefix: str,
        publish: Publish,
        views: Views,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rollout_id, self.bundle, self.gates = rollout_id, bundle, gates
        self.stations = sorted(stations)
        self.sizes = ring_sizes(rings, len(self.stations))
        self._prefix, self._publish, self._views = prefix, publish, views
        self._clock, self._sleep = clock, sleep
        self.log: list[str] = []  # every step, as said

    def run(self) -> bool:
        """True when every ring took the bundle; False when a gate stopped it."""
        done = 0
        for ring, size in enumerate(self.sizes, 1):
            new = self.stations[done:size]
            self._say(f"ring {ring}: {', '.join(new)}")
            try:
                self._ring(new)
            except RolloutFailed as exc:
                self._say(f"ring {ring} stopped: {exc}")
                self._desire(new, "clear")
                self._say(f"ring {ring}: the candidate left shadow; later rings untouched")
                return False
            done = size
        self._say(f"rolled out to {done} stations")
        return True

    # -- one ring ---------------------------------------------------------------------------
    def _ring(self, stations: list[str]) -> None:
        self._desire(stations, "shadow")
        self._wait_applied(stations, "shadow")
        self._soak(stations)
        self._desire(stations, "promote")
        self._wait_applied(stations, "promote")
        self._say(f"promoted on {', '.join(stations)}")

    def _desire(self, stations: list[str], mode: str) -> None:
        bundle = None if mode == "clear" else {
            "name": self.bundle.name, "sha256": self.bundle.sha256, "url": self.bundle.url
        }  # fmt: skip
        payload = {"schema": 1, "rollout": self.rollout_id, "mode": mode, "bundle": bundle}
        for station in stations:
            self._publish(f"{self._prefix}/{station}/desired", json.dumps(payload).encode())
        self._say(f"desired {mode} published to {', '.join(stations)}")

    def _wait_applied(self, stations: list[str], mode: str) -> None:
        deadline = self._clock() + self.gates.apply_timeout_s
        while True:
            waiting = []
            for station in stations:
                outcome = self._outcome(station)
                if (
                    outcome is None
                    or outcome.get("mode") != mode
                    or outcome.get("state") == "applying"
                ):
                    waiting.append(station)
                elif outcome.get("state") != "applied":
                    raise RolloutFailed(f"{station} could not apply it: {outcome.get('reason')}")
            if not waiting:
                self._say(f"{mode} applied on {', '.join(stations)}")
                return
            if self._clock() > deadline:
                raise RolloutFailed(
                    f"no {mode} applied within {self.gates.apply_timeout_s:g} s on {', '.join(waiting)}"
                )  # noqa: E501
            self._sleep(self.gates.poll_s)

    def _soak(self, stations: list[str]) -> None:
        gates = self.gates
        started = self._clock()
        deadline = started + gates.soak_s + gates.apply_timeout_s
        while True:
            ready = True
            for station in stations:
                shadow = self._shadow(station)
                if shadow is None or (shadow.get("frames") or 0) < gates.min_frames:
                    ready = False
                    continue
                self._check(station, shadow)
            if ready and self._clock() - started >= gates.soak_s:
                self._say(
                    f"soaked {gates.soak_s:g} s in shadow on {', '.join(stations)}: gates met"
                )
                return
            if self._clock() > deadline:
                raise RolloutFailed(f"fewer than {gates.min_frames} shadow frames within the soak")
            self._sleep(gates.poll_s)

    def _check(self, station: str, shadow: dict[str, Any]) -> None:
        """The alarm rate first (the line's own number: a candidate that rejects good parts),
        then the agreement with the model in service."""
        candidate, service = shadow.get("candidate_alarm_rate"), shadow.get("service_alarm_rate")
        worse = candidate is not None and service is not None and candidate - service
        if worse and worse > self.gates.max_alarm_delta:
            raise RolloutFailed(
                f"{station}: the candidate alarms on {candidate:.1%} of frames, the model in "
                f"service on {service:.1%} (more than {self.gates.max_alarm_delta:.1%} apart)"
            )
        agreement = shadow.get("agreement")
        if agreement is not None and agreement < self.gates.min_agreement:
            raise RolloutFailed(
                f"{station}: agreement {agreement:.3f} < {self.gates.min_agreement:g}"
            )

    # -- what the stations report -----------------------------------------------------------
    def _report(self, station: str) -> dict[str, Any]:
        view = self._views().get(station)
        return (getattr(view, "report", None) or {}) if view is not None else {}

    def _outcome(self, station: str) -> dict[str, Any] | None:
        outcome = self._report(station).get("desired")
        if not isinstance(outcome, dict) or outcome.get("rollout") != self.rollout_id:
            return None
        return outcome

    def _shadow(self, station: str) -> dict[str, Any] | None:
        shadow = self._report(station).get("shadow")
        if not isinstance(shadow, dict) or shadow.get("identity") != self.bundle.sha256:
            return None
        return shadow

    def _say(self, line: str) -> None:
        self.log.append(line)
        log.info("rollout %s: %s", self.rollout_id, line)
