"""From per-frame scores to defect events: thresholds, k-of-n debounce and hysteresis.

A label *alarms* on a frame when its alarm condition holds, as the data set declared it
(edge/data/meanings.py): a label that alarms when ``present`` alarms on a score above its
threshold, one that alarms when ``absent`` on a score below it; a label declared ``never`` has no
rule. No label name is special. A defect is raised when k of the
last n inspected frames alarm and cleared after m consecutive clean frames, so one physical
defect gives exactly one ``start`` and one ``end`` event, with its first and last alarming
frame, peak score (the most extreme one) and the number of alarming frames.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from pi_inspect.edge.data.meanings import LabelMeaning, from_alarms
from pi_inspect.edge.events import DefectEvent

ALARM_DIRECTIONS = ("above", "below")


@dataclass(frozen=True)
class Rule:
    threshold: float
    direction: str  # "above" or "below"
    condition: str | None = None  # the alarm condition in words: "length absent"
    meaning: str | None = None  # what the label means, as the data set declared it

    def alarms(self, score: float) -> bool:
        return score > self.threshold if self.direction == "above" else score < self.threshold

    def more_extreme(self, a: float, b: float) -> float:
        return max(a, b) if self.direction == "above" else min(a, b)


@dataclass
class _Hit:
    frame: int
    timestamp: float
    score: float


@dataclass
class _Track:
    """The state of one label: recent verdicts, and the open defect if raised."""

    window: deque[_Hit | None]
    event_id: str | None = None
    first: _Hit | None = None
    last: _Hit | None = None
    peak: float = 0.0
    frames: int = 0
    clean: int = 0


def make_rules(
    labels: tuple[str, ...] | list[str],
    thresholds: Mapping[str, float],
    alarms: Mapping[str, str | None],
    overrides: Mapping[str, float] | None = None,
    meanings: Mapping[str, LabelMeaning] | None = None,
) -> dict[str, Rule]:
    """Rules for the labels that alarm; a label without an alarm direction has none.

    ``meanings`` (the bundle's declaration) names each rule's condition and meaning; without
    it the condition follows from the direction (above: present, below: absent)."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(labels))
    if unknown:
        raise ValueError(f"threshold for unknown label(s) {unknown}; the model has {list(labels)}")
    rules: dict[str, Rule] = {}
    for label in labels:
        direction = alarms.get(label)
        if direction not in ALARM_DIRECTIONS:
            continue
        threshold = float(overrides.get(label, thresholds.get(label, 0.5)))
        declared = (meanings or {}).get(label) or from_alarms([label], alarms)[label]
        rules[label] = Rule(
            threshold, direction, declared.condition(label), declared.meaning or None
        )
    return rules


class Debouncer:
    """k-of-n raise, m-clean clear, per label. Not thread-safe: the daemon holds its lock."""

    def __init__(
        self,
        rules: Mapping[str, Rule],
        *,
        k: int,
        n: int,
        m: int,
        model_sha256: str | Mapping[str, str] | None = None,  # one model, or per label
    ) -> None:
        if not 1 <= k <= n or m < 1:
            raise ValueError(f"need 1 <= k <= n and m >= 1 (k={k}, n={n}, m={m})")
        self.k, self.n, self.m = k, n, m
        self.model_sha256 = model_sha256
        self._rules = dict(rules)
        self._tracks = {label: _Track(deque(maxlen=n)) for label in rules}

    @property
    def rules(self) -> dict[str, Rule]:
        return dict(self._rules)

    def _sha256(self, label: str) -> str | None:
        sha = self.model_sha256
        return sha if sha is None or isinstance(sha, str) else sha.get(label)

    def adopt(self, other: Debouncer) -> None:
        """Take over ``other``'s window and open defect for every label both have, with the same
        window length: a model joining the running one leaves the labels it does not score
        as they were, and ends none of their defects."""
        if other.n != self.n:
            return
        for label, track in other._tracks.items():
            if label in self._tracks:
                self._tracks[label] = track

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(label for label, t in self._tracks.items() if t.event_id is not None)

    @property
    def active_conditions(self) -> tuple[str, ...]:
        """The alarm conditions of the raised labels, in words (``"length absent"``)."""
        return tuple(self._rules[label].condition or label for label in self.active)

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        for label, value in thresholds.items():
            if label not in self._rules:
                raise ValueError(f"label {label!r} has no alarm (known: {sorted(self._rules)})")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"threshold for {label!r} must be in [0, 1], got {value}")
        for label, value in thresholds.items():
            rule = self._rules[label]
            self._rules[label] = Rule(float(value), rule.direction, rule.condition, rule.meaning)

    def update(
        self, frame: int, timestamp: float, scores: Mapping[str, float]
    ) -> list[DefectEvent]:
        """Feed one inspected frame; returns the events it causes (usually none)."""
        events: list[DefectEvent] = []
        for label, rule in self._rules.items():
            score = float(scores[label])
            track = self._tracks[label]
            hit = _Hit(frame, timestamp, score) if rule.alarms(score) else None
            track.window.append(hit)
            if track.event_id is None:
                if sum(h is not None for h in track.window) >= self.k:
                    events.append(self._start(label, rule, track))
            elif hit is not None:
                track.clean = 0
                track.last = hit
                track.frames += 1
                track.peak = rule.more_extreme(track.peak, score)
            else:
                track.clean += 1
                if track.clean >= self.m:
                    events.append(self._end(label, track))
        return events

    def flush(self) -> list[DefectEvent]:
        """End every open defect (shutdown, model reload)."""
        return [self._end(label, t) for label, t in self._tracks.items() if t.event_id is not None]

    def _start(self, label: str, rule: Rule, track: _Track) -> DefectEvent:
        """The ``start`` event of a defect the window has just raised."""
        hits = [h for h in track.window if h is not None]
        track.event_id = uuid.uuid4().hex[:12]
        track.first, track.last = hits[0], hits[-1]
        track.frames = len(hits)
        track.clean = 0
        peak = hits[0].score
        for h in hits[1:]:
            peak = rule.more_extreme(peak, h.score)
        track.peak = peak
        return DefectEvent(
            event_id=track.event_id,
            kind="start",
            label=label,
            started_at=track.first.timestamp,
            ended_at=None,
            peak_score=round(peak, 4),
            frames=track.frames,
            first_frame=track.first.frame,
            last_frame=track.last.frame,
            model_sha256=self._sha256(label),
            condition=rule.condition,
            meaning=rule.meaning,
        )

    def _end(self, label: str, track: _Track) -> DefectEvent:
        if track.event_id is None or track.first is None or track.last is None:
            raise RuntimeError(f"no open defect for {label!r}")
        rule = self._rules[label]
        event = DefectEvent(
            event_id=track.event_id,
            kind="end",
            label=label,
            started_at=track.first.timestamp,
            ended_at=track.last.timestamp,
            peak_score=round(track.peak, 4),
            frames=track.frames,
            first_frame=track.first.frame,
            last_frame=track.last.frame,
            model_sha256=self._sha256(label),
            condition=rule.condition,
            meaning=rule.meaning,
        )
        track.event_id = None
        track.first = track.last = None
        track.frames = track.clean = 0
        track.window.clear()
        return event
