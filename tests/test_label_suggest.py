"""Suggestions from a pulled folder's samples.csv and the order the labelling tool shows frames in."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from label_helpers import make_pulled, uncertainty_order

from pi_inspect.edge.errors import DataError
from pi_inspect.edge.label import suggest as sg
from pi_inspect.edge.label.sources import OrderedFrames, open_frames, with_suggestions

LABELS = ("good", "error", "break", "length")


def row(scores=None, thresholds=None, right="", said=""):
    return {
        "name": "images/x.jpg",
        "scores": json.dumps(scores or {}),
        "thresholds": json.dumps(thresholds or {}),
        "right_labels": right,
        "said": said,
    }


def values(suggestion: sg.Suggestion) -> dict[str, bool]:
    return dict(zip(LABELS, suggestion.values, strict=True))


# --- one row ------------------------------------------------------------------------------


def test_operator_labels_win_over_the_model():
    s = sg.suggest(row({"error": 0.9}, {"error": 0.5}, right="break;length", said="1"), LABELS)
    assert s.by == "operator"
    assert values(s) == {"good": False, "error": False, "break": True, "length": True}


def test_operator_saying_nothing_is_wrong_means_good():
    s = sg.suggest(row({"error": 0.9}, {"error": 0.5}, said="1"), LABELS)
    assert values(s) == {"good": True, "error": False, "break": False, "length": False}
    without_good = sg.suggest(row(said="1"), ("error", "break"))
    assert without_good.values == (False, False) and without_good.by == "operator"


def test_operator_labels_the_tool_does_not_have_are_ignored():
    s = sg.suggest(row(right="scratch;error", said="1"), LABELS)
    assert values(s) == {"good": False, "error": True, "break": False, "length": False}


def test_model_labels_are_scores_above_their_thresholds():
    s = sg.suggest(
        row({"error": 0.7, "break": 0.3, "length": 0.6}, {"error": 0.5, "break": 0.2, "length": 0.6}),
        LABELS,
    )
    assert s.by == "model"
    # length: a score equal to its threshold is not above it; good: unscored and others True
    assert values(s) == {"good": False, "error": True, "break": True, "length": False}
    assert math.isclose(s.margin, 0.0)


def test_unscored_good_is_true_when_no_other_label_is():
    s = sg.suggest(row({"error": 0.2, "break": 0.1}, {"error": 0.5, "break": 0.4}), LABELS)
    assert values(s) == {"good": True, "error": False, "break": False, "length": False}
    assert math.isclose(s.margin, 0.3)


def test_a_scored_good_follows_its_own_score():
    s = sg.suggest(row({"good": 0.1, "error": 0.2}, {"good": 0.5, "error": 0.5}), LABELS)
    assert values(s)["good"] is False


def test_labels_without_a_threshold_or_score_are_false_and_do_not_count_for_the_margin():
    s = sg.suggest(row({"error": 0.9, "break": 0.45}, {"break": 0.4, "length": 0.1}), LABELS)
    assert values(s) == {"good": False, "error": False, "break": True, "length": False}
    assert math.isclose(s.margin, 0.05)


@pytest.mark.parametrize(
    "bad",
    [
        row(),
        row({"error": 0.9}, {"break": 0.5}),
        {"name": "images/x.jpg", "scores": "{not json", "thresholds": "[]", "said": ""},
        {"name": "images/x.jpg", "scores": '{"error": NaN}', "thresholds": '{"error": 0.5}'},
        {"name": "images/x.jpg", "scores": '{"error": "0.9"}', "thresholds": '{"error": 0.5}'},
        {"name": "images/x.jpg"},
        None,
    ],
)
def test_rows_without_an_operator_answer_or_a_scored_label_suggest_nothing(bad):
    assert sg.suggest(bad, LABELS) is None


def test_margin_is_the_smallest_distance_to_a_threshold():
    assert math.isclose(sg.margin({"a": 0.9, "b": 0.45, "c": 0.1}, {"a": 0.5, "b": 0.5}), 0.05)
    assert sg.margin({"a": 0.9}, {"b": 0.5}) is None


# --- order --------------------------------------------------------------------------------


def test_order_is_model_by_margin_then_frames_without_rows_then_the_operators():
    def model(m):
        return sg.Suggestion((False,), "model", m)

    found = {
        "c.png": model(0.30),
        "a.png": model(0.05),
        "e.png": sg.Suggestion((True,), "operator", 0.0),
        "b.png": model(0.05),
        "d.png": sg.Suggestion((True,), "operator", None),
    }
    names = ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"]
    order = sg.uncertainty_order(names, found)
    assert [names[i] for i in order] == [
        "a.png", "b.png", "c.png", "f.png", "g.png", "d.png", "e.png",
    ]


# --- reading the CSV and reordering frames ------------------------------------------------


def test_samples_csv_is_found_in_the_folder_or_its_parent(tmp_path):
    images = tmp_path / "dest" / "images"
    images.mkdir(parents=True)
    assert sg.find_samples(images) is None
    (tmp_path / "dest" / "samples.csv").write_text("name\n")
    assert sg.find_samples(images) == tmp_path / "dest" / "samples.csv"
    (images / "samples.csv").write_text("name\n")
    assert sg.find_samples(images) == images / "samples.csv"


def test_rows_are_read_by_stem(tmp_path):
    make_pulled(tmp_path / "dest", count=3, said={1: ""})
    rows = sg.read_samples(tmp_path / "dest" / "samples.csv")
    assert sorted(rows) == [f"20261207-101500-{k:05d}-near" for k in range(3)]
    assert rows["20261207-101500-00001-near"]["said"] == "1"


def test_an_unreadable_samples_csv_is_a_data_error(tmp_path):
    (tmp_path / "samples.csv").write_bytes(b"name\n\xff\xfe\n")
    with pytest.raises(DataError, match="cannot read"):
        sg.read_samples(tmp_path / "samples.csv")


def test_reordered_frames_keep_name_image_and_source_together(tmp_path):
    samples = make_pulled(tmp_path / "dest", count=12, said={3: "error"})
    images = tmp_path / "dest" / "images"
    frames, found = with_suggestions(open_frames(images), images, LABELS)
    try:
        assert isinstance(frames, OrderedFrames) and len(frames) == 12 and len(found) == 12
        expected = uncertainty_order(samples)
        assert [frames.name(i) for i in range(12)] == [f"{s.stem}.png" for s in expected]
        for i, sample in enumerate(expected):
            np.testing.assert_array_equal(
                frames.read(i), cv2.imread(str(images / f"{sample.stem}.jpg"))
            )
            assert frames.source_id(i) == f"{sample.stem}.png"  # each sample its own group
            assert values(found[frames.name(i)]) == sample.values
    finally:
        frames.close()


def test_a_folder_without_samples_csv_keeps_its_name_order(tmp_path):
    for k in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"cam_{k}.png"), np.full((8, 8, 3), k, np.uint8))
    plain = open_frames(tmp_path)
    frames, found = with_suggestions(plain, tmp_path, LABELS)
    assert frames is plain and found == {}
    assert [frames.name(i) for i in range(3)] == ["cam_0.png", "cam_1.png", "cam_2.png"]


def test_frames_without_a_row_follow_the_suggested_ones_in_name_order(tmp_path):
    samples = make_pulled(tmp_path / "dest", count=5, said={})
    images = tmp_path / "dest" / "images"
    for name in ("zz-extra.jpg", "aa-extra.jpg"):
        cv2.imwrite(str(images / name), np.zeros((8, 8, 3), np.uint8))
    frames, found = with_suggestions(open_frames(images), images, LABELS)
    names = [frames.name(i) for i in range(len(frames))]
    assert names == [f"{s.stem}.png" for s in uncertainty_order(samples)] + [
        "aa-extra.png", "zz-extra.png",
    ]
    assert "aa-extra.png" not in found
