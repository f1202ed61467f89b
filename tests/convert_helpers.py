"""A tiny, real training run for converter and bundle tests (no synth, no train CLI needed).

Two labels on 32x32 images: ``bright`` (a bright square somewhere) and ``stripe`` (a dark
horizontal stripe). A small CNN in the converter's contract learns them in a few epochs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

LABELS = ["bright", "stripe"]
SIZE = 32


def make_images(out: Path, n: int, seed: int) -> Path:
    import cv2

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = rng.integers(60, 140, size=(SIZE, SIZE, 3), dtype=np.uint8)
        bright, stripe = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        if bright:
            x, y = rng.integers(2, SIZE - 10, size=2)
            img[y : y + 8, x : x + 8] = 250
        if stripe:
            y = int(rng.integers(2, SIZE - 4))
            img[y : y + 3, :] = 5
        name = f"img_{i:04d}.png"
        cv2.imwrite(str(out / name), img)
        rows.append([name, bright, stripe])
    table = out / "labels.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", *LABELS])
        w.writerows(rows)
    return table


def make_run(
    root: Path, head_hidden: tuple[int, ...] = (), epochs: int = 12, seed: int = 0
) -> Path:
    """Train a tiny model in the converter contract and save it as a run directory."""
    import keras

    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.train.models import ModelSpec, build_model

    keras.utils.set_random_seed(seed)
    train_csv = make_images(root / "train", 160, seed)
    valid_csv = make_images(root / "valid", 64, seed + 1)
    ds = read_dataset(train_csv)
    x, _ = load_images(ds.paths, (SIZE, SIZE))
    spec = ModelSpec(
        arch="cnn", size=(SIZE, SIZE), n_outputs=len(LABELS), head_hidden=head_hidden, dropout=0.0
    )
    model = build_model(spec)
    for layer in model.layers:  # few steps: let BatchNorm's moving statistics catch up
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x.astype(np.float32), ds.y, epochs=epochs, batch_size=8, verbose=0)
    run = root / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "run.json").write_text(
        json.dumps(
            {
                "arch": "cnn",
                "task": "multilabel",
                "labels": LABELS,
                "input_size": [SIZE, SIZE],
                "feature_layer": "features",
                "head_hidden": list(head_hidden),
                "seed": seed,
                "alarms": {"bright": "above", "stripe": "above"},
                "splits": {"train": str(train_csv), "valid": str(valid_csv)},
            }
        )
    )
    (run / "thresholds.json").write_text(json.dumps({"bright": 0.5, "stripe": 0.5}))
    return run
