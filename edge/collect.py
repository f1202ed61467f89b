"""Which inspected frames the station keeps as samples for the next model, within quotas.

The frames that teach a model most are the ones it was unsure of: a score near a threshold.
A small random share of ordinary frames shows what the line looks like today (for drift and
for good-only retraining). Each rule has its own per-minute, per-hour and per-day quota, so a
line that runs near a threshold all day keeps a bounded, spread-out set instead of one burst.

``Collector.decide`` only decides, from the scores the daemon already has; the dispatcher
encodes and stores a frame only when it is kept (``pi_inspect.edge.snapshots``, whose count,
bytes, age and free-space limits bound every sample alike). A defect's start is kept already
(its snapshot) and an operator's request is the ``collect`` verb; neither counts here.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from pi_inspect.edge.decide import Rule
from pi_inspect.edge.section import Section

WINDOWS = (("per_minute", 60.0), ("per_hour", 3600.0), ("per_day", 86400.0))


class Quota(Section):
    """How many frames a rule may keep per minute, hour and day (0: none in that window)."""

    per_minute: Annotated[int, Field(ge=0, le=600)] = 2  # most frames kept in any minute
    per_hour: Annotated[int, Field(ge=0, le=36_000)] = 30  # most frames kept in any hour
    per_day: Annotated[int, Field(ge=0, le=100_000)] = 200  # most frames kept in any day


class NearRule(Quota):
    """Keep a frame when any label's score is within ``band`` of its threshold."""

    enabled: bool = False  # keep frames whose score is near a threshold
    band: Annotated[float, Field(gt=0, le=0.5)] = 0.1  # how near: |score - threshold| <= band


class RandomRule(Quota):
    """Keep a ``share`` of all inspected frames, at random."""

    enabled: bool = False  # keep a random share of ordinary frames
    share: Annotated[float, Field(gt=0, le=1)] = 0.001  # chance that a frame is kept
    per_minute: Annotated[int, Field(ge=0, le=600)] = 1  # most frames kept in any minute
    per_hour: Annotated[int, Field(ge=0, le=36_000)] = 10  # most frames kept in any hour
    per_day: Annotated[int, Field(ge=0, le=100_000)] = 100  # most frames kept in any day


class CollectConfig(Section):
    """Samples for retraining, kept beside the defect snapshots and bounded by their limits."""

    near: NearRule = Field(default_factory=NearRule)
    random: RandomRule = Field(default_factory=RandomRule)


class Window:
    """Times of what was kept, to answer "may one more be kept now" for each quota."""

    def __init__(self, quota: Quota) -> None:
        self._limits = [(getattr(quota, key), span) for key, span in WINDOWS]
        self._kept: deque[float] = deque()

    def take(self, now: float) -> bool:
        """Count one more at ``now`` if every window has room; whether it did."""
        while self._kept and now - self._kept[0] >= WINDOWS[-1][1]:
            self._kept.popleft()
        for limit, span in self._limits:
            inside = 0
            for t in reversed(self._kept):  # newest first: stop at the first outside the span
                if now - t >= span or inside >= limit:
                    break
                inside += 1
            if inside >= limit:
                return False
        self._kept.append(now)
        return True


class Collector:
    """Decides per inspected frame whether to keep it and why (``near`` or ``random``)."""

    def __init__(
        self,
        config: CollectConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self._near = Window(config.near)
        self._random = Window(config.random)

    @property
    def enabled(self) -> bool:
        return self.config.near.enabled or self.config.random.enabled

    def decide(self, scores: Mapping[str, float], rules: Mapping[str, Rule]) -> Keep | None:
        """The rule that keeps this frame, or None. A frame near a threshold is kept before
        a random one; a rule whose quota is spent keeps nothing until it has room again."""
        now = self._clock()
        near = self.config.near
        close = near.enabled and any(
            abs(score - rules[label].threshold) <= near.band
            for label, score in scores.items()
            if label in rules
        )
        if close and self._near.take(now):
            return Keep("near", _thresholds(rules))
        chance = self.config.random
        if chance.enabled and self._rng.random() < chance.share and self._random.take(now):
            return Keep("random", _thresholds(rules))
        return None


@dataclass(frozen=True)
class Keep:
    """A frame to keep as a sample: why, and the thresholds it was judged against."""

    reason: str  # near, random, operator, disagree
    thresholds: dict[str, float]
    details: dict[str, object] = field(default_factory=dict)  # more for the sidecar


def _thresholds(rules: Mapping[str, Rule]) -> dict[str, float]:
    return {label: rule.threshold for label, rule in rules.items()}
