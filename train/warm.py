"""``train --init RUN``: start from where an earlier run ended instead of from random weights.

Retraining on the old data plus what a station collected should not relearn what the model
knew. Every layer of the new model takes the weights of the earlier run's layer with the same
name and shapes; the output layer, when the label set changed (a defect kind nobody had shown
the first model), keeps the columns of the labels both runs have and starts the new ones fresh.
The run records what was carried over.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.errors import ConfigError

log = logging.getLogger(__name__)


def _label_columns(
    old: list[np.ndarray], new: list[np.ndarray], old_labels: list[str], labels: list[str]
) -> list[np.ndarray] | None:
    """``new`` with the columns of the labels both runs have taken from ``old`` (an output
    layer whose last axis is the labels), or None when the layers do not line up so."""
    if len(old) != len(new) or not old_labels or not labels:
        return None
    out = []
    for a, b in zip(old, new, strict=True):
        if a.shape[:-1] != b.shape[:-1] or a.shape[-1] != len(old_labels) or b.shape[-1] != len(labels):
            return None
        b = b.copy()
        for j, label in enumerate(labels):
            if label in old_labels:
                b[..., j] = a[..., old_labels.index(label)]
        out.append(b)
    return out


def warm_start(model: Any, init_dir: str | Path, labels: list[str], task: str) -> dict[str, Any]:
    """Copy the weights of the run at ``init_dir`` into ``model``; what was carried over."""
    from pi_inspect.train.runs import load_run

    old = load_run(init_dir)
    if old.info.get("task") != task:
        raise ConfigError(f"--init {init_dir}: it is a {old.info.get('task')} run; this one is {task}")
    old_labels = list(old.info.get("labels", []))
    copied, by_label, fresh = 0, [], []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        try:
            source = old.model.get_layer(layer.name).get_weights()
        except ValueError:
            fresh.append(layer.name)
            continue
        same = len(source) == len(weights) and all(
            a.shape == b.shape for a, b in zip(source, weights, strict=True)
        )
        per_label = old_labels != labels and all(a.shape[-1] == len(old_labels) for a in source)
        if same and not per_label:
            layer.set_weights(source)
            copied += 1
            continue
        merged = _label_columns(source, weights, old_labels, labels)
        if merged is not None:
            layer.set_weights(merged)
            by_label.append(layer.name)
        else:
            fresh.append(layer.name)
    if not copied and not by_label:
        raise ConfigError(f"--init {init_dir}: no layer of its model fits this one (another architecture?)")
    new_labels = [label for label in labels if label not in old_labels]
    log.info(
        "warm start from %s: %d layers carried over%s%s", init_dir, copied + len(by_label),
        f", {len(fresh)} start fresh ({', '.join(fresh)})" if fresh else "",
        f"; new labels {', '.join(new_labels)}" if new_labels else "",
    )
    return {
        "run": str(Path(init_dir).absolute()),
        "layers": copied,
        "by_label": by_label,
        "fresh": fresh,
        "new_labels": new_labels,
    }
