"""The stats window's percentiles: numpy's linear method, without numpy's lazy imports."""

from __future__ import annotations

import numpy as np
import pytest

from pi_inspect.edge.stats import StatsWindow, percentile


@pytest.mark.parametrize(
    "values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], list(np.linspace(0, 9, 37))]
)
@pytest.mark.parametrize("q", [0, 50, 95, 100])
def test_percentile_matches_numpys_linear_method(values, q):
    assert percentile(sorted(values), q) == pytest.approx(float(np.percentile(values, q)))


def test_window_reports_p50_and_p95_of_the_last_frames_only():
    w = StatsWindow(window=4)
    for i, latency in enumerate([100.0, 1.0, 2.0, 3.0, 4.0]):
        w.record(latency, done_at=float(i))
    p50, p95 = w.latency_percentiles()
    assert p50 == pytest.approx(2.5) and p95 == pytest.approx(3.85)
    assert w.fps == pytest.approx(1.0)
