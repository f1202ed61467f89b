"""Thresholds, k-of-n debounce and hysteresis turn noisy per-frame scores into one event per defect."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pi_inspect.edge.decide import Debouncer, make_rules

LABELS = ("good", "error", "break", "length")
ALARMS = {"error": "above", "break": "above", "length": "below"}


def debouncer(k=2, n=3, m=3, overrides=None) -> Debouncer:
    rules = make_rules(LABELS, dict.fromkeys(LABELS, 0.5), ALARMS, overrides)
    return Debouncer(rules, k=k, n=n, m=m, model_sha256="f" * 64)


def feed(d: Debouncer, error_scores, length=0.9):
    events = []
    for i, s in enumerate(error_scores):
        events += d.update(i, 1000.0 + i, {"good": 0.0, "error": s, "break": 0.0, "length": length})
    return events


def test_good_label_never_alarms_and_only_alarm_labels_get_rules():
    rules = make_rules(LABELS, dict.fromkeys(LABELS, 0.5), ALARMS)
    assert set(rules) == {"error", "break", "length"}


def test_one_noisy_defect_gives_one_start_and_one_end_with_its_extent_and_peak():
    scores = [0.1] * 5 + [0.9, 0.2, 0.8, 0.95, 0.7, 0.3, 0.85] + [0.1] * 6
    events = feed(debouncer(k=2, n=3, m=3), scores)
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert start.event_id == end.event_id
    assert start.first_frame == 5 and end.first_frame == 5
    assert end.last_frame == 11
    assert end.peak_score == pytest.approx(0.95)
    assert end.frames == 5  # frames 5, 7, 8, 9 and 11 are above the threshold
    assert end.started_at == 1005.0 and end.ended_at == 1011.0


def test_a_single_spike_below_k_raises_nothing():
    assert feed(debouncer(k=2, n=3), [0.1, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1]) == []


def test_defect_clears_only_after_m_consecutive_clean_frames():
    events = feed(debouncer(k=1, n=1, m=4), [0.9, 0.1, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert [(e.kind, e.first_frame, e.last_frame) for e in events] == [
        ("start", 0, 0),
        ("end", 0, 4),
    ]


def test_length_alarms_when_its_score_is_below_threshold_and_peak_is_the_lowest():
    d = debouncer(k=1, n=1, m=1)
    events = []
    for i, s in enumerate([0.9, 0.2, 0.05, 0.3, 0.9]):
        events += d.update(i, float(i), {"good": 1, "error": 0, "break": 0, "length": s})
    assert [(e.kind, e.label) for e in events] == [("start", "length"), ("end", "length")]
    assert events[1].peak_score == pytest.approx(0.05)


def test_config_threshold_overrides_the_bundle_and_unknown_labels_are_refused():
    d = debouncer(k=1, n=1, m=1, overrides={"error": 0.95})
    assert feed(d, [0.9, 0.9]) == []
    with pytest.raises(ValueError, match="unknown label"):
        make_rules(LABELS, {}, ALARMS, {"stain": 0.5})


def test_set_thresholds_validates_before_changing_anything():
    d = debouncer()
    with pytest.raises(ValueError):
        d.set_thresholds({"error": 0.2, "break": 1.5})
    assert d.rules["error"].threshold == 0.5
    d.set_thresholds({"error": 0.2})
    assert d.rules["error"].threshold == 0.2


def test_flush_ends_open_defects_at_shutdown():
    d = debouncer(k=1, n=1, m=5)
    assert [e.kind for e in feed(d, [0.9, 0.9])] == ["start"]
    ended = d.flush()
    assert [(e.kind, e.last_frame) for e in ended] == [("end", 1)]
    assert d.active == ()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=120), st.integers(1, 4), st.integers(1, 4))
def test_events_always_pair_up_and_never_overlap(scores, k, m):
    d = debouncer(k=k, n=4, m=m)
    events = feed(d, scores) + d.flush()
    kinds = [e.kind for e in events]
    assert kinds == ["start", "end"] * (len(kinds) // 2)
    ends = [e for e in events if e.kind == "end"]
    for a, b in zip(ends, ends[1:], strict=False):
        assert a.last_frame < b.first_frame
    for e in ends:
        above = np.array(scores[e.first_frame : e.last_frame + 1]) > 0.5
        assert above[0] and above[-1] and e.frames == int(above.sum())
