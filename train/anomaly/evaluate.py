"""Evaluate an anomaly run on a labelled test set: AUROC per defect kind, the threshold's false
alarms and recall, the pointing game, a score histogram, and robustness.

A defect kind is each label's alarm condition as the data set declares it (``error present``,
``length absent``); a good image is one where no condition holds. Each kind's AUROC compares
the images showing that kind with the good images; ``only`` repeats it on images showing that
kind and no other (the harder figure: a second defect cannot lift the score).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.train import metrics as M
from pi_inspect.train.runs import EVAL_DIR, Run, write_json

log = logging.getLogger(__name__)


def defect_kinds(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[Path]]:
    """{kind: bool mask} for every label that alarms, and the images' paths, of a data set."""
    from pi_inspect.edge.data.meanings import meanings_for
    from pi_inspect.train.inputs import read_labelled

    ds = read_labelled(path, "multilabel")
    meanings, _ = meanings_for(path, ds.labels)
    kinds: dict[str, np.ndarray] = {}
    for k, label in enumerate(ds.labels):
        m = meanings[label]
        if m.alarm == "never":
            continue
        present = ds.y[:, k] > 0.5
        kinds[label] = present if m.alarm == "present" else ~present
    return kinds, list(ds.paths)


def kind_metrics(
    scores: np.ndarray, kinds: dict[str, np.ndarray], threshold: float
) -> tuple[dict[str, Any], np.ndarray]:
    """Per kind: AUROC (all / only that kind), recall at the threshold, support; and the good mask."""
    any_defect = np.zeros(len(scores), bool)
    count = np.zeros(len(scores), int)
    for mask in kinds.values():
        any_defect |= mask
        count += mask
    good = ~any_defect
    alarm = scores > threshold
    out: dict[str, Any] = {}
    for kind, mask in kinds.items():
        only = mask & (count == 1)
        out[kind] = {
            "auroc": M.auroc(mask[good | mask], scores[good | mask]),
            "auroc_only": M.auroc(only[good | only], scores[good | only]),
            "recall": float(alarm[mask].mean()) if mask.any() else float("nan"),
            "support": int(mask.sum()),
            "support_only": int(only.sum()),
        }
    return out, good


def pointing(
    maps: np.ndarray,
    paths: list[Path],
    boxes: dict,
    image_sizes: list[tuple[int, int]],
    size: tuple[int, int],
    kinds: list[str],
    only: dict[str, np.ndarray] | None = None,
    any_kind: bool = False,
) -> dict[str, dict[str, float]]:
    """The pointing game per boxed kind: the map's peak inside one of the image's boxes of that
    kind (boxes scaled from each image's own size to the model input; the usual 15 px slack at
    224 px, scaled).

    An anomaly map has no kinds: on an image with a break and a loop its peak may rightly sit
    on the loop. With ``only`` ({kind: mask}), a kind is scored on the images where it is the
    only defect; with ``any_kind``, on every image with that kind, a hit being a peak inside
    any defect box of the image (the class-agnostic pointing game)."""
    tolerance = 15.0 * size[0] / 224.0
    out = {}
    for kind in kinds:
        hits = []
        for i, path in enumerate(paths):
            if only is not None and not only[kind][i]:
                continue
            key = os.path.normpath(str(path))
            found = boxes.get((key, kind))
            if not found:
                continue
            if any_kind:
                found = [b for k in kinds for b in boxes.get((key, k), [])]
            w, h = image_sizes[i]
            scaled = [
                (b[0] * size[0] / w, b[1] * size[1] / h, b[2] * size[0] / w, b[3] * size[1] / h)
                for b in found
            ]
            hits.append(any(M.peak_in_box(maps[i], b, size, tolerance) for b in scaled))
        if hits:
            out[kind] = {"score": M.pointing_game(hits), "trials": len(hits)}
    return out


def histogram_png(scores: np.ndarray, good: np.ndarray, threshold: float, out: Path) -> Path:
    """Good against defective scores on one axis, the threshold as a line."""
    from pi_inspect.train.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    bins = np.linspace(0.0, 1.0, 51)
    ax.hist(scores[good], bins=bins, alpha=0.7, label=f"good ({int(good.sum())})", color="#2a7")
    ax.hist(scores[~good], bins=bins, alpha=0.7, label=f"defective ({int((~good).sum())})", color="#c33")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _image_sizes(paths: list[Path]) -> list[tuple[int, int]]:
    import cv2

    sizes = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        sizes.append((img.shape[1], img.shape[0]) if img is not None else (1, 1))
    return sizes


def evaluate_anomaly(
    run: Run,
    data: str | os.PathLike,
    with_robustness: bool = False,
    boxes_path: Path | None = None,
    bundle: Path | None = None,
) -> dict[str, Any]:
    """Score ``data`` with the run's model (or with ``bundle``, its int8 conversion, through
    the edge runtime as on the Pi), write RUN/eval/anomaly.json and histogram.png."""
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.train.anomaly.fit import predict_scores
    from pi_inspect.train.evaluate import PERTURBATIONS
    from pi_inspect.train.inputs import read_boxes

    out_dir = run.path / EVAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds, paths = defect_kinds(data)
    images, ok = load_images(paths, run.input_size)
    images = images[ok]  # unreadable files were reported by load_images and are left out
    paths = [p for p, k in zip(paths, ok, strict=True) if k]
    kinds = {k: m[ok] for k, m in kinds.items()}
    threshold = float(run.thresholds.get("anomaly", run.info["anomaly"]["threshold"]))

    def score(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if bundle is None:
            return predict_scores(run.model, x)
        from pi_inspect.edge.runtime import int8_scores

        return int8_scores(bundle, x)

    if bundle is not None:
        from pi_inspect.edge.bundle import read_manifest

        threshold = float(read_manifest(bundle).thresholds["anomaly"])
    scores, maps = score(images)
    per_kind, good = kind_metrics(scores, kinds, threshold)
    result: dict[str, Any] = {
        "task": "anomaly",
        "model": str(bundle) if bundle is not None else "float (Keras)",
        "count": len(scores),
        "threshold": threshold,
        "false_alarm_target": run.info["anomaly"]["false_alarm_target"],
        "false_alarms": float((scores[good] > threshold).mean()) if good.any() else float("nan"),
        "good": int(good.sum()),
        "auroc_any": M.auroc(~good, scores),
        "kinds": per_kind,
    }
    candidate = boxes_path or Path(data) / "boxes.csv"
    if Path(candidate).is_file():
        boxes = read_boxes(candidate)
        boxed = sorted({label for (_, label) in boxes} & set(kinds))
        sizes = _image_sizes(paths)
        count = sum(m.astype(int) for m in kinds.values())
        only = {k: m & (count == 1) for k, m in kinds.items()}
        result["pointing"] = pointing(maps, paths, boxes, sizes, run.input_size, boxed, only)
        result["pointing_all"] = pointing(maps, paths, boxes, sizes, run.input_size, boxed)
        result["pointing_any"] = pointing(
            maps, paths, boxes, sizes, run.input_size, boxed, any_kind=True
        )
    histogram_png(scores, good, threshold, out_dir / "histogram.png")
    if with_robustness:
        rows = []
        for name, fn in {"clean": None, **PERTURBATIONS}.items():
            s = scores if fn is None else score(np.stack([fn(img) for img in images]))[0]
            pk, _ = kind_metrics(s, kinds, threshold)
            rows.append(
                {
                    "condition": name,
                    "false_alarms": float((s[good] > threshold).mean()) if good.any() else 0.0,
                    **{f"auroc_{k}": v["auroc"] for k, v in pk.items()},
                    **{f"recall_{k}": v["recall"] for k, v in pk.items()},
                }
            )
        result["robustness"] = rows
    write_json(out_dir / "anomaly.json", result)
    return result


def format_anomaly(result: dict[str, Any]) -> str:
    """The headline numbers as a short table."""
    lines = [
        f"model: {result['model']}",
        f"threshold {result['threshold']:.4f}: false alarms {result['false_alarms']:.2%} of "
        f"{result['good']} good images (target {result['false_alarm_target']:.2%}); "
        f"AUROC good vs any defect {result['auroc_any']:.4f}",
        f"{'kind':<10} {'AUROC':>7} {'only':>7} {'recall':>7} {'support':>8} {'pointing':>9} "
        f"{'(all)':>7} {'(any box)':>9}",
    ]
    games = [result.get(k, {}) for k in ("pointing", "pointing_all", "pointing_any")]
    for kind, m in result["kinds"].items():
        p, a, n = (f"{g[kind]['score']:.1%}" if kind in g else "-" for g in games)
        lines.append(
            f"{kind:<10} {m['auroc']:>7.4f} {m['auroc_only']:>7.4f} {m['recall']:>7.1%} "
            f"{m['support']:>8d} {p:>9} {a:>7} {n:>9}"
        )
    lines.append(
        "pointing: on images with that defect only (an anomaly map has no kinds); "
        "(all): on every image with one; (any box): the same images, the peak on any marked defect"
    )
    for row in result.get("robustness", []):
        aur = ", ".join(f"{k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("auroc_"))
        lines.append(
            f"  {row['condition']:<13} false alarms {row['false_alarms']:.2%}; AUROC {aur}"
        )
    return "\n".join(lines)
