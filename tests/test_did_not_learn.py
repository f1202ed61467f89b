"""A model that learned nothing is refused with one clear line, never shipped: trained on pure
noise with random labels, ``train`` exits 3 and says so, and ``convert`` refuses the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.train.learned import MIN_SKILL, judge

pytestmark = pytest.mark.slow


def noise_set(root, count: int = 300, seed: int = 0):
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows = ["name,source,good,error,break"]
    for i in range(count):
        cv2.imwrite(str(root / "images" / f"{i:04d}.png"), rng.integers(0, 256, (16, 16, 3), np.uint8))
        flags = rng.integers(0, 2, 3)
        rows.append(f"images/{i:04d}.png,v{i % 40},{flags[0]},{flags[1]},{flags[2]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root / "labels.csv"


def test_training_on_noise_ends_in_one_did_not_learn_line_and_convert_refuses_it(tmp_path, capsys):
    data = noise_set(tmp_path / "noise")
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--size", "16", "--epochs", "4", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 3, err
    lines = [line for line in err.splitlines() if line.startswith("pi-inspect train: error:")]
    assert len(lines) == 1 and "did not learn" in lines[0] and "Traceback" not in err
    info = json.loads((run / "run.json").read_text())
    assert info["validation"]["learned"] is False
    code = main(["convert", str(run), "--out", str(tmp_path / "bundle")])
    err = capsys.readouterr().err
    assert code == 1 and "did not learn" in err and not (tmp_path / "bundle").exists()


def test_the_judge_tells_skill_from_chance_and_abstains_on_too_few_images():
    y = np.array([[1, 0]] * 10 + [[0, 1]] * 10, np.float32)
    assert judge("multiclass", ("a", "b"), y, y).learned is True
    assert judge("multiclass", ("a", "b"), y, np.tile([0.6, 0.4], (20, 1))).learned is False
    few = judge("multilabel", ("a",), y[:6, :1], y[:6, :1])
    assert few.learned is None  # three a side: too few to tell
    assert 0 < MIN_SKILL < 1


def test_thresholds_are_written_rounded_away_from_the_side_that_alarms():
    from pi_inspect.convert.bundle_writer import written_threshold

    assert written_threshold(0.3984375, "above") == 0.3985  # an equal int8 score stays under it
    assert written_threshold(0.3984375, "below") == 0.3984  # and over it, for a label alarming below
    assert written_threshold(0.5, "above") == 0.5 and written_threshold(0.5, "below") == 0.5
    # a threshold just under 1 (a good image far out) keeps the decimals that keep it under 1
    assert written_threshold(0.99996996, "above") == 0.99997 and written_threshold(0.00002, "below") == 0.00002
