"""Metric code checked on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pi_inspect.train import metrics as M


def test_binary_metrics_match_hand_counts():
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    m = M.binary_metrics(truth, pred)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["support"] == 3


def test_undefined_precision_is_zero_not_nan():
    m = M.binary_metrics(np.zeros(4, bool), np.zeros(4, bool))
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["accuracy"] == 1.0


def test_per_label_metrics_are_per_column_and_exact_match_needs_every_label():
    truth = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
    pred = np.array([[1, 0], [0, 0], [1, 1]], dtype=bool)
    per = M.per_label_metrics(truth, pred, ["a", "b"])
    assert per["a"]["accuracy"] == 1.0
    assert per["b"]["accuracy"] == pytest.approx(2 / 3)
    assert per["b"]["recall"] == pytest.approx(1 / 2)
    assert M.exact_match(truth, pred) == pytest.approx(2 / 3)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        M.per_label_metrics(np.zeros((2, 2), bool), np.zeros((2, 3), bool), ["a", "b"])


def test_tuned_threshold_separates_a_separable_label_in_its_gap():
    truth = np.array([0, 0, 0, 1, 1], dtype=bool)
    scores = np.array([0.05, 0.10, 0.20, 0.30, 0.90])
    t = M.tune_threshold(truth, scores, "accuracy")
    assert 0.20 < t <= 0.30
    assert M.binary_metrics(truth, scores >= t)["accuracy"] == 1.0


def test_tuned_threshold_prefers_the_value_nearest_one_half_on_ties():
    truth = np.array([0, 1], dtype=bool)
    scores = np.array([0.1, 0.9])
    assert M.tune_threshold(truth, scores) == pytest.approx(0.5)


def _demo_length_validation() -> tuple[np.ndarray, np.ndarray]:
    """The demo recipe's borderline length scores on its validation split, in small."""
    truth = np.array([0] * 50 + [1] * 50, dtype=bool)
    neg = np.concatenate([np.linspace(0.01, 0.2, 49), [0.272]])
    scores = np.concatenate([neg, [0.239, 0.288, 0.353, 0.472], np.linspace(0.6, 0.99, 46)])
    return truth, scores


def test_threshold_moves_back_toward_one_half_within_the_error_count_noise():
    # the demo run's length label: 0.28 makes 1 error (sqrt 1 = 1 of noise), 0.32 makes 2 and is
    # nearer 0.5; 0.41 makes 3 and is out
    truth, scores = _demo_length_validation()
    t = M.tune_threshold(truth, scores, "accuracy")
    assert 0.288 < t <= 0.353


def test_noise_tolerance_applies_to_accuracy_only():
    truth, scores = _demo_length_validation()
    t = M.tune_threshold(truth, scores, "balanced")
    assert 0.272 < t <= 0.288


def test_f1_objective_trades_precision_for_recall_differently_from_accuracy():
    # 8 negatives at 0.4, 2 positives at 0.45 and 2 at 0.1: accuracy keeps the threshold high
    truth = np.array([0] * 8 + [1, 1, 1, 1], dtype=bool)
    scores = np.array([0.4] * 8 + [0.45, 0.45, 0.1, 0.1])
    acc_t = M.tune_threshold(truth, scores, "accuracy")
    f1_t = M.tune_threshold(truth, scores, "f1")
    assert M.binary_metrics(truth, scores >= acc_t)["accuracy"] == pytest.approx(10 / 12)
    assert (
        M.binary_metrics(truth, scores >= f1_t)["f1"]
        >= M.binary_metrics(truth, scores >= acc_t)["f1"]
    )


def test_confusion_matrix_rows_are_truth_columns_prediction():
    cm = M.confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_top_k_accuracy_counts_the_true_class_among_the_k_best():
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    truth = np.array([0, 1, 2])
    assert M.top_k_accuracy(truth, scores, 1) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(truth, scores, 2) == pytest.approx(2 / 3)
    assert M.top_k_accuracy(truth, scores, 5) == 1.0  # k larger than the classes: all


def test_most_uncertain_orders_by_distance_to_threshold():
    scores = np.array([[0.9, 0.1], [0.52, 0.0], [0.3, 0.45], [0.0, 1.0]])
    margin = M.multilabel_margin(scores, [0.5, 0.5])
    assert M.most_uncertain(margin, 2).tolist() == [1, 2]
    assert M.multiclass_margin(np.array([[0.6, 0.4], [0.9, 0.1]])).tolist() == pytest.approx(
        [0.2, 0.8]
    )


def test_peak_in_box_scales_a_coarse_heat_map_to_image_pixels():
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0  # cell centre at x=(2.5)*24=60, y=(1.5)*24=36 on a 96 px image
    assert M.peak_in_box(heat, (50, 30, 70, 40), (96, 96))
    assert not M.peak_in_box(heat, (0, 0, 40, 40), (96, 96))
    assert M.peak_in_box(heat, (0, 0, 40, 40), (96, 96), tolerance=21)
    assert M.pointing_game([True, False, True, True]) == 0.75
    assert M.pointing_game([]) == 0.0
