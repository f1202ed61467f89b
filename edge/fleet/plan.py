"""What a rollout is, apart from running it: its gates, bundle and plan (``Plan``), the rings
(``ring_sizes``), and the record it publishes on ``<prefix>/rollout`` read back (``parse_record``,
``plan_of``), so that ``--resume``, ``--abort``, ``fleet status`` and the fleet page share them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCHEMA = 1
RECORD_TOPIC = "rollout"  # <prefix>/rollout: one level above the stations' topics
ACTIVE = ("running", "interrupted")  # states that --resume or --abort may take up
STATES = (*ACTIVE, "done", "failed", "aborted")


@dataclass(frozen=True)
class Gates:
    """What a ring must meet before the next one starts (``fleet rollout``'s options)."""

    soak_s: float = 60.0  # seconds each ring runs the candidate in shadow
    min_frames: int = 100  # shadow frames each station must have judged
    min_agreement: float = 0.95  # candidate and model in service agreeing, frame by frame
    max_alarm_delta: float = 0.05  # how far the candidate's alarm rate may exceed the service's
    apply_timeout_s: float = 300.0  # for a station to fetch, check and apply a desired state
    poll_s: float = 0.5  # between two looks at the stations' reports


@dataclass(frozen=True)
class Bundle:
    name: str
    sha256: str  # the manifest's content sha256: the bundle's identity
    url: str


@dataclass(frozen=True)
class Plan:
    """What a rollout does: which bundle, to which stations, in which rings, under which gates."""

    rollout_id: str
    bundle: Bundle
    stations: tuple[str, ...]  # sorted: ring k is stations[sizes[k-2]:sizes[k-1]]
    sizes: tuple[int, ...]  # cumulative station counts of the rings
    gates: Gates

    @classmethod
    def make(cls, rollout_id: str, bundle: Bundle, stations: Sequence[str], rings: str,
             gates: Gates) -> Plan:  # fmt: skip
        ordered = tuple(sorted(stations))
        return cls(rollout_id, bundle, ordered, tuple(ring_sizes(rings, len(ordered))), gates)

    def ring(self, number: int) -> list[str]:
        """The stations new to ring ``number`` (1-based)."""
        start = self.sizes[number - 2] if number > 1 else 0
        return list(self.stations[start : self.sizes[number - 1]])


class RolloutFailed(RuntimeError):
    """A gate failed; the message says which station and why."""


class Interrupted(RuntimeError):
    """``interrupt()`` was called: the rollout stops where it is and can be resumed."""


class InvalidRecord(ValueError):
    """A rollout record that is not schema 1 as documented (the message says why)."""


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


def parse_record(value: Any) -> dict[str, Any]:
    """A rollout record (decoded JSON), checked enough to resume or abort it from."""
    if not isinstance(value, dict) or value.get("schema") != SCHEMA:
        raise InvalidRecord(f"expected a JSON object with schema {SCHEMA}")
    try:
        plan = plan_of(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRecord(f"the record's plan is incomplete: {exc}") from None
    ring, done = value.get("ring"), value.get("done")
    if value.get("state") not in STATES or not _count(ring) or not _count(done):
        raise InvalidRecord("the record has no state, ring or done count")
    if not plan.sizes or ring > len(plan.sizes) or done > plan.sizes[-1]:
        raise InvalidRecord("the record's rings do not fit its stations")
    if value["state"] in ACTIVE and done >= plan.sizes[-1]:
        raise InvalidRecord("an unfinished record whose rings are all done")
    return value


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def plan_of(record: dict[str, Any], url: str | None = None) -> Plan:
    """The plan a record was made from; ``url`` replaces where the bundle is fetched from."""
    bundle = Bundle(**record["bundle"])
    if url is not None:
        bundle = Bundle(bundle.name, bundle.sha256, url)
    stations = tuple(str(s) for s in record["stations"])
    sizes = tuple(int(n) for n in record["sizes"])
    if list(sizes) != sorted(set(sizes)) or (sizes and not 0 < sizes[-1] <= len(stations)):
        raise ValueError("sizes must grow and fit the stations")
    return Plan(str(record["id"]), bundle, stations, sizes, Gates(**record["gates"]))
