"""PNG figures: training curves, confusion matrix, image montages (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_history(path: str | os.PathLike) -> dict[str, list[float]]:
    """history.csv (Keras CSVLogger format) as column -> values."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(float("nan"))
    return columns


def training_curves(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Loss and every accuracy-like metric, train vs validation, one panel each (seed 004)."""
    plt = _pyplot()
    hist = read_history(history_csv)
    epochs = np.arange(1, len(hist.get("epoch", [])) + 1)
    metrics = [
        k for k in hist if k not in ("epoch", "learning_rate", "lr") and not k.startswith("val_")
    ]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 4))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, metrics, strict=False):
        ax.plot(epochs, hist[name], label=f"train {name}")
        if f"val_{name}" in hist:
            ax.plot(epochs, hist[f"val_{name}"], label=f"valid {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)


def confusion_png(
    cm: np.ndarray, labels: Sequence[str], out_png: str | os.PathLike, title: str
) -> Path:
    """A confusion matrix with counts in each cell (rows: truth, columns: prediction)."""
    plt = _pyplot()
    cm = np.asarray(cm)
    size = max(3.5, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > top / 2 else "black",
            )
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)


def binary_confusions_png(per_label: dict[str, dict], out_png: str | os.PathLike) -> Path:
    """One 2x2 confusion matrix per label of a multi-label model, side by side."""
    plt = _pyplot()
    labels = list(per_label)
    fig, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3.4))
    axes = np.atleast_1d(axes)
    for ax, label in zip(axes, labels, strict=True):
        m = per_label[label]
        cm = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks([0, 1], ["False", "True"])
        ax.set_yticks([0, 1], ["False", "True"])
        ax.set_title(f"{label} (acc {m['accuracy']:.1%})")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(2):
            for j in range(2):
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return Path(out_png)


def montage(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    out_png: str | os.PathLike,
    columns: int = 6,
    legend: dict[str, tuple[int, int, int]] | None = None,
) -> Path:
    """RGB uint8 images in a grid with a caption under each; ``legend`` (name -> RGB colour)
    adds a colour key under the grid."""
    plt = _pyplot()
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, cap in zip(axes.ravel(), images, captions, strict=False):
        ax.imshow(img)
        ax.set_title(cap, fontsize=7)
    fig.tight_layout()
    if legend:
        from matplotlib.patches import Patch

        handles = [
            Patch(facecolor=tuple(c / 255 for c in rgb), edgecolor="black", label=name)
            for name, rgb in legend.items()
        ]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
                   frameon=False, title="heat colour", title_fontsize=8)
        fig.subplots_adjust(bottom=min(0.35, 0.6 / (2.4 * rows)))
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)
