"""Evaluate a run on a test set: thresholds tuned on validation, metrics, lists, robustness.

Writes RUN/thresholds.json and RUN/eval/ (metrics.json, confusion PNG, uncertain.csv,
misclassified.csv, robustness.csv/.md). Robustness repeats the metrics on perturbed copies of the
test images (seed 000: gaussian blur and sharpening; plus brightness up/down).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.train import metrics as M
from pi_inspect.train.runs import EVAL_DIR, THRESHOLDS_FILE, Run, write_json

log = logging.getLogger(__name__)


def _blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(img: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.GaussianBlur(img, (0, 0), sigma)

    return apply


def _sharpen(img: np.ndarray) -> np.ndarray:
    import cv2

    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float32)
    return cv2.filter2D(img, -1, kernel)


def _brightness(delta: int) -> Callable[[np.ndarray], np.ndarray]:
    def apply(img: np.ndarray) -> np.ndarray:
        return np.clip(img.astype(np.int16) + delta, 0, 255).astype(np.uint8)

    return apply


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur_s1": _blur(1.0),
    "blur_s2": _blur(2.0),
    "sharpen": _sharpen,
    "brighter_+40": _brightness(40),
    "darker_-40": _brightness(-40),
}


def predict(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    return np.asarray(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0))


def tune_run_thresholds(
    run: Run, valid_images: np.ndarray, valid_y: np.ndarray, objective: str
) -> dict[str, float]:
    """Per-label thresholds tuned on the validation split; saved to RUN/thresholds.json."""
    if run.task == "multilabel":
        thresholds = M.tune_thresholds(
            valid_y > 0.5, predict(run.model, valid_images), run.labels, objective
        )
    else:
        thresholds = {label: 0.5 for label in run.labels}  # argmax decides; kept for the bundle
    write_json(run.path / THRESHOLDS_FILE, thresholds)
    run.thresholds = thresholds
    return thresholds


def score_set(run: Run, scores: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The metrics of one set of scores against the truth."""
    if run.task == "multilabel":
        pred = M.apply_thresholds(scores, run.threshold_list())
        truth = y > 0.5
        return {
            "per_label": M.per_label_metrics(truth, pred, run.labels),
            "alarms": M.alarm_metrics(truth, pred, run.labels, run.meanings),
            "exact_match": M.exact_match(truth, pred),
        }
    result = M.multiclass_metrics(np.argmax(y, axis=1), scores, run.labels)
    k = len(run.labels)
    onehot = np.eye(k, dtype=bool)
    result["alarms"] = M.alarm_metrics(
        onehot[np.argmax(y, axis=1)], onehot[np.argmax(scores, axis=1)], run.labels, run.meanings
    )
    return result


def _wrong_mask(run: Run, scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    if run.task == "multilabel":
        return np.any(M.apply_thresholds(scores, run.threshold_list()) != (y > 0.5), axis=1)
    return np.argmax(scores, axis=1) != np.argmax(y, axis=1)


def _margin(run: Run, scores: np.ndarray) -> np.ndarray:
    if run.task == "multilabel":
        return M.multilabel_margin(scores, run.threshold_list())
    return M.multiclass_margin(scores)


def write_image_list(
    path: Path, run: Run, rows: np.ndarray, paths: list[str], scores, y, margin
) -> None:
    """name, margin, truth and score per label: a relabelling to-do list (seed 002)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(
            [
                "name",
                "margin",
                *(f"true_{x}" for x in run.labels),
                *(f"score_{x}" for x in run.labels),
            ]
        )
        for i in rows:
            w.writerow(
                [
                    paths[i],
                    f"{margin[i]:.4f}",
                    *(bool(v > 0.5) for v in y[i]),
                    *(f"{s:.4f}" for s in scores[i]),
                ]
            )


def robustness(
    run: Run, images: np.ndarray, y: np.ndarray, clean: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per condition: per-label accuracy (multi-label) or top-1 (multi-class)."""

    def row(name: str, result: dict[str, Any]) -> dict[str, Any]:
        if run.task == "multilabel":
            r = {label: m["accuracy"] for label, m in result["per_label"].items()}
            r["exact_match"] = result["exact_match"]
        else:
            r = {"top1": result["top1"], "top5": result["top5"]}
        return {"condition": name, **r}

    table = [row("clean", clean)]
    for name, fn in PERTURBATIONS.items():
        perturbed = np.stack([fn(img) for img in images])
        table.append(row(name, score_set(run, predict(run.model, perturbed), y)))
    return table


def write_table(rows: list[dict[str, Any]], csv_path: Path, md_path: Path) -> str:
    """Robustness table as CSV and Markdown; returns the Markdown."""
    cols = list(rows[0])
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(r["condition"] if c == "condition" else f"{100 * r[c]:.1f}%" for c in cols)
            + " |"
        )
    text = "\n".join(lines) + "\n"
    md_path.write_text(text, encoding="utf-8")
    return text


def evaluate(
    run: Run,
    test_images: np.ndarray,
    test_y: np.ndarray,
    test_paths: list[str],
    valid_images: np.ndarray,
    valid_y: np.ndarray,
    objective: str = "accuracy",
    with_robustness: bool = False,
    list_size: int = 50,
) -> dict[str, Any]:
    """Tune thresholds, score the test set, write RUN/eval/; returns metrics.json's content."""
    from pi_inspect.train.plots import binary_confusions_png, confusion_png

    out = run.path / EVAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    thresholds = tune_run_thresholds(run, valid_images, valid_y, objective)
    scores = predict(run.model, test_images)
    result = score_set(run, scores, test_y)
    result.update(
        {
            "task": run.task,
            "labels": run.labels,
            "thresholds": thresholds,
            "count": len(test_y),
            "threshold_objective": objective,
        }
    )
    if run.task == "multilabel":
        binary_confusions_png(result["per_label"], out / "confusion.png")
    else:
        confusion_png(
            np.asarray(result["confusion"]),
            run.labels,
            out / "confusion.png",
            f"top-1 {result['top1']:.1%}",
        )
    margin = _margin(run, scores)
    wrong = np.flatnonzero(_wrong_mask(run, scores, test_y))
    wrong = wrong[np.argsort(margin[wrong], kind="stable")]
    write_image_list(out / "misclassified.csv", run, wrong, test_paths, scores, test_y, margin)
    write_image_list(
        out / "uncertain.csv",
        run,
        M.most_uncertain(margin, list_size),
        test_paths,
        scores,
        test_y,
        margin,
    )
    result["misclassified"] = len(wrong)
    if with_robustness:
        table = robustness(run, test_images, test_y, result)
        result["robustness"] = table
        result["robustness_markdown"] = write_table(
            table, out / "robustness.csv", out / "robustness.md"
        )
    write_json(out / "metrics.json", result)
    return result


def compare_alarms(
    new: dict[str, Any], old_run: Run, test_images: np.ndarray, test_y: np.ndarray, labels: list[str]
) -> list[dict[str, Any]]:
    """Per alarm condition of the new run: its precision and recall beside the earlier run's on
    the same test images (``test_images`` at the earlier run's input size), each model at its
    own thresholds. A condition the earlier run did not have shows None for it."""
    shared = [label for label in old_run.labels if label in labels]
    old: dict[str, Any] = {}
    if len(shared) == len(old_run.labels):  # the old model's labels are all in the test set
        y_old = test_y[:, [labels.index(label) for label in old_run.labels]]
        old = score_set(old_run, predict(old_run.model, test_images), y_old)["alarms"]
    rows = []
    for label, m in new["alarms"].items():
        before = old.get(label)
        rows.append({
            "label": label, "condition": m["condition"], "support": m["support"],
            "precision": m["precision"], "recall": m["recall"],
            "old_precision": before["precision"] if before else None,
            "old_recall": before["recall"] if before else None,
        })  # fmt: skip
    return rows


def format_comparison(rows: list[dict[str, Any]], old_name: str) -> str:
    def pct(v: float | None) -> str:
        return f"{v:>7.1%}" if v is not None else f"{'-':>7}"

    lines = [f"against {old_name} (each at its own thresholds, the same test images):",
             f"  {'condition':<20} {'prec':>7} {'recall':>7} {'was':>7} {'was':>7} {'support':>7}"]
    for r in rows:
        lines.append(f"  {r['condition']:<20} {pct(r['precision'])} {pct(r['recall'])} "
                     f"{pct(r['old_precision'])} {pct(r['old_recall'])} {r['support']:>7d}")
    return "\n".join(lines)
