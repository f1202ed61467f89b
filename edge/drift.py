"""Has the line moved away from what the model was calibrated on? A warning, never a fault.

``convert`` records in the bundle the histogram of each label's scores on the good images it
checked the model on (``reference``: ``BINS`` equal bins over [0, 1]). On the station the
monitor keeps the same histogram over the last ``drift.window`` frames the model judged good
(no label alarming on that frame): lighting that drifts, a new material or a dirty lens move
the good frames' scores long before they cross a threshold. The population stability index
(PSI) between the two says how far: under 0.1 nothing to see, 0.1-0.25 a shift, above
``drift.max_psi`` (0.25, the usual bound) a warning in ``stats`` and one log line when it starts
and one when it ends. Only good frames are compared, so a line that simply makes more defects
than the test set had is no drift.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from pi_inspect.edge.health import Health
from pi_inspect.edge.section import Section

log = logging.getLogger(__name__)

BINS = 10
SMOOTHING = 0.5  # added to every bin's count: an empty bin's PSI term would be infinite


class DriftConfig(Section):
    """The good frames' score distribution against the bundle's, as a warning."""

    enabled: bool = True  # compare when the bundle carries a reference
    window: Annotated[int, Field(ge=50, le=100_000)] = 500  # good frames compared at a time
    max_psi: Annotated[float, Field(gt=0, le=10)] = 0.25  # PSI above which it warns


def bin_of(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))


def histogram(scores: Sequence[float]) -> list[int]:
    counts = [0] * BINS
    for s in scores:
        counts[bin_of(float(s))] += 1
    return counts


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """Population stability index of two histograms (counts or shares) over the same bins."""
    if sum(reference) <= 0 or sum(live) <= 0:
        return 0.0
    r_total = float(sum(reference)) + SMOOTHING * len(reference)
    l_total = float(sum(live)) + SMOOTHING * len(live)
    total = 0.0
    for r, v in zip(reference, live, strict=True):
        p, q = (r + SMOOTHING) / r_total, (v + SMOOTHING) / l_total
        total += (q - p) * math.log(q / p)
    return total


class DriftMonitor:
    """Per label, the last ``window`` good frames' bins; ``health`` compares them (cheap)."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self._model: str | None = None
        self._reference: dict[str, list[int]] = {}
        self._bins: dict[str, deque[int]] = {}
        self._warning: str | None = None

    def observe(self, model: str, reference: Mapping[str, list[int]] | None, scores: Mapping[str, float], alarmed: bool) -> None:
        """One inspected frame of the model ``model`` (its identity; a new one starts afresh)."""
        if model != self._model:
            self._model = model
            self._reference = {k: list(v) for k, v in (reference or {}).items()}
            self._bins = {label: deque(maxlen=self.config.window) for label in self._reference}
        if alarmed or not self.config.enabled:
            return
        for label, bins in self._bins.items():
            if label in scores:
                bins.append(bin_of(scores[label]))

    def health(self) -> Health:
        if not self._reference or not self.config.enabled:
            return Health()
        frames = min((len(b) for b in self._bins.values()), default=0)
        if frames < self.config.window:
            return Health(stats={"drift": {"good_frames": frames, "window": self.config.window}})
        values = {label: round(psi(self._reference[label], _counts(b)), 3) for label, b in self._bins.items()}
        worst = max(values, key=values.get)
        warning = None
        if values[worst] > self.config.max_psi:
            warning = (
                f"the good frames' {worst} scores moved from the bundle's (PSI {values[worst]:.2f} "
                f"> drift.max_psi {self.config.max_psi:g}): check the lighting, lens and material"
            )
        if warning and not self._warning:
            log.warning("drift: %s", warning)
        elif self._warning and not warning:
            log.info("drift over: the good frames' scores are back near the bundle's")
        self._warning = warning
        stats: dict[str, Any] = {"psi": values, "good_frames": frames, "warning": warning}
        return Health(stats={"drift": stats})


def _counts(bins: deque[int]) -> list[int]:
    counts = [0] * BINS
    for b in bins:
        counts[b] += 1
    return counts
