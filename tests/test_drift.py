"""Drift: the good frames' scores against the histogram the bundle was calibrated on, a warning
in stats (never a fault), reset when another model comes into service."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from daemon_helpers import OK_BGR, RecordingOutput, ScriptedClassifier, script, write_video

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.drift import BINS, DriftConfig, DriftMonitor, histogram, psi

NEAR_BGR = (255, 0, 110)  # error 0.43: still good for a 0.5 threshold, but far from 0.0


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    ref = histogram([0.01, 0.02, 0.05, 0.08, 0.12, 0.15] * 50)
    assert psi(ref, ref) == 0.0
    assert psi(ref, [2 * c for c in ref]) < 0.01  # shares, not counts
    mild = [0.01, 0.02, 0.05, 0.08, 0.12, 0.15] * 48 + [0.25] * 12  # 4 % of frames a bin up
    assert 0.0 < psi(ref, histogram(mild)) < 0.25
    assert psi(ref, histogram([0.45] * 300)) > 5
    assert len(ref) == BINS and histogram([1.0, 0.0]) == [1] + [0] * 8 + [1]


def test_only_good_frames_count_and_a_new_model_starts_afresh():
    monitor = DriftMonitor(DriftConfig(window=50, max_psi=0.25))
    reference = {"error": histogram([0.02] * 100)}
    for _ in range(60):
        monitor.observe("v1", reference, {"error": 0.95}, alarmed=True)  # defects: not drift
    assert monitor.health().stats["drift"]["good_frames"] == 0
    for _ in range(60):
        monitor.observe("v1", reference, {"error": 0.44}, alarmed=False)
    drift = monitor.health().stats["drift"]
    assert drift["psi"]["error"] > 0.25 and "error scores moved" in drift["warning"]
    assert monitor.health().faults == {}  # a warning, not a fault
    monitor.observe("v2", reference, {"error": 0.02}, alarmed=False)
    assert monitor.health().stats["drift"]["good_frames"] == 1
    assert DriftMonitor(DriftConfig()).health().stats == {}  # no reference: nothing to say


class Calibrated(ScriptedClassifier):
    """The scripted model with the reference a bundle carries: good error scores near 0."""

    manifest = SimpleNamespace(
        content_sha256="d" * 64, reference={"error": histogram([0.0, 0.02, 0.05] * 40)}
    )


def test_a_line_whose_good_frames_drift_says_so_in_stats_and_keeps_inspecting(
    tmp_path: Path, make_daemon
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 60), (NEAR_BGR, 60)))
    out = RecordingOutput()
    config = parse_config({
        "source": {"uri": str(video)},
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "output": {"stats_interval_s": 0.01},
        "drift": {"window": 50},
    })
    daemon = make_daemon(config, outputs=[out], classifier_loader=lambda _m: Calibrated())
    summary = daemon.run(threading.Event())
    assert summary.frames == 120 and not summary.faults and not summary.events
    drift = out.stats[-1].extra["drift"]
    assert drift["good_frames"] == 50 and drift["psi"]["error"] > 0.25 and drift["warning"]
    assert all(state.fault is None for state in out.states)
