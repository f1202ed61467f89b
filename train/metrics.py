"""Evaluation metrics in plain numpy, so they can be checked on hand-made cases.

Multi-label: per-label accuracy / precision / recall / F1 (seed 001 reports per-attribute
accuracy), thresholds tuned per label. Multi-class: confusion matrix and top-k (seed 002).
Both: the most uncertain and the misclassified images, for relabelling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OBJECTIVES = ("accuracy", "f1", "balanced")


def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def binary_counts(truth: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """tp, fp, fn, tn of two boolean vectors."""
    truth = np.asarray(truth, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    return {
        "tp": int(np.sum(truth & pred)),
        "fp": int(np.sum(~truth & pred)),
        "fn": int(np.sum(truth & ~pred)),
        "tn": int(np.sum(~truth & ~pred)),
    }


def binary_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """Accuracy, precision, recall and F1 of the positive class, with the counts behind them.

    Precision/recall/F1 are 0 when undefined (no predicted / no true positives), not NaN, so
    JSON stays valid; ``support`` says how many positives there were.
    """
    c = binary_counts(truth, pred)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    precision = _safe_div(c["tp"], c["tp"] + c["fp"])
    recall = _safe_div(c["tp"], c["tp"] + c["fn"])
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {
        "accuracy": _safe_div(c["tp"] + c["tn"], n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": c["tp"] + c["fn"],
        "count": n,
        **c,
    }


def per_label_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """``binary_metrics`` for each column of (n, k) boolean truth and prediction matrices."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    if y_true.shape != y_pred.shape or y_true.shape[1] != len(labels):
        raise ValueError(
            f"shape mismatch: truth {y_true.shape}, pred {y_pred.shape}, {len(labels)} labels"
        )
    return {label: binary_metrics(y_true[:, j], y_pred[:, j]) for j, label in enumerate(labels)}


def alarm_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], meanings: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """``binary_metrics`` of each label's *alarm condition* (as the data set declared it):
    for a label that alarms when absent, the positive class is its absence. Labels that never
    alarm are left out."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    out: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(labels):
        meaning = meanings[label]
        if meaning.alarm == "never":
            continue
        flip = meaning.alarm == "absent"
        truth, pred = y_true[:, j] ^ flip, y_pred[:, j] ^ flip
        out[label] = {"condition": meaning.condition(label), "meaning": meaning.meaning,
                      **binary_metrics(truth, pred)}
    return out


def exact_match(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of samples whose every label is right (subset accuracy)."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    return float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else 0.0


def apply_thresholds(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Boolean predictions: score >= threshold, per column."""
    return np.asarray(scores) >= np.asarray(thresholds, dtype=float)[None, :]


def _objective(truth: np.ndarray, pred: np.ndarray, objective: str) -> np.ndarray:
    """Objective value for each candidate row of ``pred`` (candidates, n)."""
    tp = np.sum(truth & pred, axis=1)
    fp = np.sum(~truth & pred, axis=1)
    fn = np.sum(truth & ~pred, axis=1)
    tn = np.sum(~truth & ~pred, axis=1)
    if objective == "accuracy":
        return (tp + tn) / truth.size
    if objective == "f1":
        return np.divide(
            2 * tp, 2 * tp + fp + fn, out=np.zeros(len(tp)), where=(2 * tp + fp + fn) > 0
        )
    if objective == "balanced":
        tpr = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=(tp + fn) > 0)
        tnr = np.divide(tn, tn + fp, out=np.zeros(len(tp)), where=(tn + fp) > 0)
        return (tpr + tnr) / 2
    raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")


def tune_threshold(truth: np.ndarray, scores: np.ndarray, objective: str = "accuracy") -> float:
    """The threshold on ``scores`` that maximises ``objective`` for one label.

    Candidates are the midpoints between consecutive distinct scores (plus 0.5); among equally
    good thresholds the one closest to 0.5 wins, so a perfectly separated label gets the
    threshold in the middle of its gap that is nearest to the untuned default.

    For ``accuracy`` the threshold then moves back toward 0.5 as far as the validation split
    cannot tell the difference (``_within_noise``): a threshold that one or two borderline
    images pull off the default is fitted to noise.
    """
    truth = np.asarray(truth, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    if truth.size == 0:
        return 0.5
    distinct = np.unique(scores)
    if len(distinct) > 2000:  # quantiles keep it O(n * 2000)
        distinct = np.unique(np.quantile(scores, np.linspace(0, 1, 2001)))
    mids = (distinct[:-1] + distinct[1:]) / 2
    candidates = np.unique(np.concatenate([mids, [0.5, distinct[0] - 1e-6, distinct[-1] + 1e-6]]))
    candidates = (
        candidates[(candidates > 0.0) & (candidates < 1.0)] if len(candidates) else candidates
    )
    if len(candidates) == 0:
        return 0.5
    pred = scores[None, :] >= candidates[:, None]
    value = _objective(truth, pred, objective)
    best = np.flatnonzero(np.isclose(value, value.max()))
    pick = best[np.argmin(np.abs(candidates[best] - 0.5))]
    if objective == "accuracy":
        errors = np.sum(pred != truth[None, :], axis=1)
        pick = _within_noise(candidates, errors, pick)
    return float(candidates[pick])


def _within_noise(candidates: np.ndarray, errors: np.ndarray, best: int) -> int:
    """The candidate nearest 0.5 whose error count is within noise of the fewest errors.

    The smallest count m on a validation split is itself a Poisson count with standard
    deviation sqrt(m): thresholds within that of it are indistinguishable, and the one nearest
    the untuned 0.5 is the least fitted to the split's few borderline images. A perfectly
    separated label (m = 0) keeps its gap. On the six demo-recipe runs of docs/results.md this
    never cost a held-out error and saved one in four of the 24 run-label pairs.
    """
    ok = np.flatnonzero(errors <= errors[best] + np.sqrt(errors[best]))
    return int(ok[np.argmin(np.abs(candidates[ok] - 0.5))])


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, labels: Sequence[str], objective: str = "accuracy"
) -> dict[str, float]:
    """``tune_threshold`` for every label (column)."""
    y_true = np.asarray(y_true, dtype=bool)
    scores = np.asarray(scores, dtype=float)
    return {
        label: tune_threshold(y_true[:, j], scores[:, j], objective)
        for j, label in enumerate(labels)
    }


def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows are the truth, columns the prediction."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(true_idx, dtype=int), np.asarray(pred_idx, dtype=int)), 1)
    return cm


def top_k_accuracy(true_idx: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the ``k`` highest scores (seed 002's top-5)."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return 0.0
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(true_idx)[:, None], axis=1)))


def multiclass_metrics(true_idx: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> dict:
    """Top-1 / top-5, confusion matrix and one-vs-rest per-class metrics."""
    true_idx = np.asarray(true_idx, dtype=int)
    pred_idx = np.argmax(scores, axis=1)
    k = len(labels)
    onehot_true = np.eye(k, dtype=bool)[true_idx]
    onehot_pred = np.eye(k, dtype=bool)[pred_idx]
    return {
        "top1": top_k_accuracy(true_idx, scores, 1),
        "top5": top_k_accuracy(true_idx, scores, 5),
        "confusion": confusion_matrix(true_idx, pred_idx, k).tolist(),
        "per_label": per_label_metrics(onehot_true, onehot_pred, labels),
    }


def multilabel_margin(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Per sample, the smallest distance of any label's score to its threshold (small = unsure)."""
    return np.min(np.abs(np.asarray(scores) - np.asarray(thresholds, dtype=float)[None, :]), axis=1)


def multiclass_margin(scores: np.ndarray) -> np.ndarray:
    """Per sample, top-1 minus top-2 score (small = unsure)."""
    scores = np.asarray(scores, dtype=float)
    if scores.shape[1] < 2:
        return np.abs(scores[:, 0] - 0.5)
    part = -np.sort(-scores, axis=1)
    return part[:, 0] - part[:, 1]


def most_uncertain(margin: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` smallest margins, most uncertain first (stable on ties)."""
    return np.argsort(np.asarray(margin), kind="stable")[:n]


def peak_in_box(
    heatmap: np.ndarray, box: Sequence[float], image_size: tuple[int, int], tolerance: float = 0.0
) -> bool:
    """Whether the heat map's maximum lies inside ``box`` = (x0, y0, x1, y1) in image pixels.

    The heat map may be coarser than the image: the peak cell's centre is scaled to image
    coordinates (``image_size`` = (width, height)) before the test. Boxes are inclusive and
    grown by ``tolerance`` pixels on every side (the pointing game's usual slack).
    """
    heatmap = np.asarray(heatmap, dtype=float)
    hy, hx = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    width, height = image_size
    px = (hx + 0.5) * width / heatmap.shape[1]
    py = (hy + 0.5) * height / heatmap.shape[0]
    x0, y0, x1, y1 = box
    t = float(tolerance)
    return bool(x0 - t <= px <= x1 + t and y0 - t <= py <= y1 + t)


def pointing_game(hits: Sequence[bool]) -> float:
    """Share of hits (0 when there were no trials)."""
    return _safe_div(sum(bool(h) for h in hits), len(hits))


def auroc(labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative
    (ties count half). NaN when either class is empty."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
