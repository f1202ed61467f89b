"""A candidate model beside the one in service, on live frames, with no effect on anything.

``[shadow] bundle`` names the candidate. Every ``every``-th inspected frame it scores the same
frame (prepared again only when its input size differs); its per-frame verdict (which labels
alarm at its own thresholds) is compared with the in-service model's, undebounced (a label only
one of them has counts where it alarms: a defect kind the candidate learned). Nothing it
says reaches LEDs, relay, events or outputs: it is counted, and a frame where the two
disagree is kept as a ``disagree`` sample within the rule's quotas (``pi_inspect.edge.collect``).

The record (frames, agreement, flips per label, both alarm rates, the candidate's latency) is
in ``stats`` as ``shadow`` and in ``<state_dir>/shadow.json``, which ``pi-inspect promote``
reads to gate a promotion. A candidate that cannot be loaded is a line in ``stats`` and one
log line, not a fault: inspection does not depend on it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.bundle import identity
from pi_inspect.edge.collect import Keep, Window
from pi_inspect.edge.decide import Rule, make_rules
from pi_inspect.edge.files import write_json
from pi_inspect.edge.health import Health
from pi_inspect.edge.shadow_config import ShadowConfig

log = logging.getLogger(__name__)

RECORD = "shadow.json"
WRITE_EVERY_S = 10.0


def _alarms(scores: Mapping[str, float], rules: Mapping[str, Rule]) -> frozenset[str]:
    return frozenset(label for label, rule in rules.items() if label in scores and rule.alarms(scores[label]))


class Shadow:
    """Scores a candidate on some frames and keeps the comparison; owned by the inspector."""

    def __init__(
        self,
        config: ShadowConfig,
        candidate: Any,
        record_dir: Path | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.candidate = candidate
        self._rules = make_rules(candidate.labels, candidate.thresholds, candidate.alarms)
        self._record_path = record_dir / RECORD if record_dir is not None else None
        self._clock = clock
        self._window = Window(config)
        self._seen = 0
        self.frames = 0
        self.agree = 0
        self.service_alarms = 0
        self.candidate_alarms = 0
        self.flips: dict[str, dict[str, int]] = {}
        self._latency_ms: deque[float] = deque(maxlen=256)
        self._written = float("-inf")
        self._started = time.time()

    def observe(
        self, rgb: Callable[[tuple[int, int]], np.ndarray], scores: Mapping[str, float],
        rules: Mapping[str, Rule],
    ) -> Keep | None:  # fmt: skip
        """Score the candidate on this frame (every ``every``-th call); a ``disagree`` sample
        to keep, or None. ``rgb(size)``: the frame prepared at an input size."""
        self._seen += 1
        if (self._seen - 1) % self.config.every:
            return None
        t0 = self._clock()
        prediction = self.candidate.predict(rgb(tuple(self.candidate.input_size)), with_features=False)
        self._latency_ms.append((self._clock() - t0) * 1000.0)
        theirs = {label: float(s) for label, s in zip(self.candidate.labels, prediction.scores, strict=True)}
        ours = _alarms(scores, rules)
        cand = _alarms(theirs, self._rules)
        self.frames += 1
        self.service_alarms += bool(ours)
        self.candidate_alarms += bool(cand)
        # a label only one of them has counts where it alarms: a new defect kind the candidate
        # learned is a disagreement with a model that cannot see it
        differ = ours ^ cand
        if not differ:
            self.agree += 1
            return None
        for label in differ:
            flip = self.flips.setdefault(label, {"raised": 0, "cleared": 0})
            flip["raised" if label in cand else "cleared"] += 1
        if self.config.collect and self._window.take(self._clock()):
            info = self.candidate.info
            return Keep(
                "disagree",
                {label: rule.threshold for label, rule in rules.items()},
                {"candidate": {
                    "model": info.name, "model_version": info.version, "model_sha256": info.sha256,
                    "scores": theirs, "verdict": sorted(cand),
                    "thresholds": {label: r.threshold for label, r in self._rules.items()},
                }},
            )  # fmt: skip
        return None

    def record(self) -> dict[str, Any]:
        info = self.candidate.info
        latency = sorted(self._latency_ms)
        return {
            "candidate": {"name": info.name, "version": info.version, "sha256": info.sha256,
                          "identity": identity(self.candidate), "bundle": str(self.config.bundle)},
            "since": self._started,
            "frames": self.frames,
            "agreement": round(self.agree / self.frames, 4) if self.frames else None,
            "service_alarm_rate": round(self.service_alarms / self.frames, 4) if self.frames else None,
            "candidate_alarm_rate": round(self.candidate_alarms / self.frames, 4) if self.frames else None,
            "flips": {k: dict(v) for k, v in sorted(self.flips.items())},
            "latency_p50_ms": round(latency[len(latency) // 2], 2) if latency else None,
        }

    def health(self) -> Health:
        """The record for ``stats``; written to ``shadow.json`` every ``WRITE_EVERY_S``."""
        record = self.record()
        now = self._clock()
        if self._record_path is not None and now - self._written >= WRITE_EVERY_S:
            self._written = now
            _write_record(self._record_path, record)
        return Health(stats={"shadow": record})

    def close(self) -> None:
        if self._record_path is not None:
            _write_record(self._record_path, self.record())
        self.candidate.close()


class ShadowError:
    """A candidate that could not be loaded: said in ``stats`` until the config changes."""

    def __init__(self, config: ShadowConfig, message: str) -> None:
        self.config = config
        self.message = message

    def observe(self, *_args: Any) -> None:
        return None

    def health(self) -> Health:
        return Health(stats={"shadow": {"bundle": str(self.config.bundle), "error": self.message}})

    def close(self) -> None:
        pass


def _write_record(path: Path, data: dict[str, Any]) -> None:
    """Quietly: a record that cannot be written is retried at the next poll."""
    try:
        write_json(path, data)
    except OSError as exc:
        log.debug("shadow record not written: %s", exc)
