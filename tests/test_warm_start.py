"""``train --init RUN``: the new model starts with the earlier run's weights; a label the
earlier run did not have starts fresh while the others keep their output columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

OLD = ["good", "error", "break"]
NEW = ["good", "error", "break", "length"]


def saved_run(folder: Path, labels: list[str], task: str = "multilabel", seed: int = 1) -> Path:
    import keras

    from pi_inspect.train.models import ModelSpec, build_model

    keras.utils.set_random_seed(seed)
    model = build_model(ModelSpec("cnn", (32, 32), len(labels), task))
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    (folder / "run.json").write_text(json.dumps({"task": task, "labels": labels, "arch": "cnn"}))
    return folder


def fresh(labels: list[str], task: str = "multilabel"):
    import keras

    from pi_inspect.train.models import ModelSpec, build_model

    keras.utils.set_random_seed(99)
    return build_model(ModelSpec("cnn", (32, 32), len(labels), task))


def output_layer(model):
    return [layer for layer in model.layers if layer.get_weights()][-1]


def test_every_layer_carries_over_and_a_new_label_starts_fresh(tmp_path: Path):
    from pi_inspect.train.runs import load_run
    from pi_inspect.train.warm import warm_start

    old_dir = saved_run(tmp_path / "v1", OLD)
    old = load_run(old_dir).model
    model = fresh(NEW)
    before = [w.copy() for w in output_layer(model).get_weights()]
    record = warm_start(model, old_dir, NEW, "multilabel")
    assert record["new_labels"] == ["length"] and record["fresh"] == []
    assert record["by_label"] == [output_layer(model).name] and record["layers"] > 3
    for layer in model.layers[:-2]:
        if layer.get_weights():
            for a, b in zip(layer.get_weights(), old.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
    kernel, bias = output_layer(model).get_weights()
    old_kernel, old_bias = output_layer(old).get_weights()
    np.testing.assert_array_equal(kernel[:, :3], old_kernel)  # good, error, break: as learned
    np.testing.assert_array_equal(bias[:3], old_bias)
    np.testing.assert_array_equal(kernel[:, 3], before[0][:, 3])  # length: its fresh start


def test_reordered_labels_keep_each_label_its_own_column(tmp_path: Path):
    from pi_inspect.train.runs import load_run
    from pi_inspect.train.warm import warm_start

    old_dir = saved_run(tmp_path / "v1", OLD)
    old_kernel = output_layer(load_run(old_dir).model).get_weights()[0]
    model = fresh(["break", "good", "error"])
    warm_start(model, old_dir, ["break", "good", "error"], "multilabel")
    kernel = output_layer(model).get_weights()[0]
    np.testing.assert_array_equal(kernel, old_kernel[:, [2, 0, 1]])


def test_a_run_of_another_task_is_refused_in_one_line(tmp_path: Path):
    from pi_inspect.edge.errors import ConfigError
    from pi_inspect.train.warm import warm_start

    old_dir = saved_run(tmp_path / "v1", OLD)
    with pytest.raises(ConfigError, match="it is a multilabel run; this one is anomaly"):
        warm_start(fresh(["anomaly"]), old_dir, ["anomaly"], "anomaly")
