"""Both task kinds train one epoch on tiny data into a complete run; evaluate/embed/gradcam run on it."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.data.table import frame_number, read_table
from pi_inspect.train.runs import load_run

pytestmark = pytest.mark.slow
LABELS = ["good", "error", "break", "length"]


def _seam_table(root: Path, n: int = 24, seed: int = 0) -> Path:
    """A tiny seed-format table: error = white square top-left, break = green square bottom-right."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows, boxes = [], []
    for i in range(n):
        img = rng.integers(0, 60, (40, 40, 3), dtype=np.uint8)
        error, brk, length = i % 2 == 0, i % 3 == 0, i % 4 != 0
        if error:
            img[4:14, 4:14] = 255
            boxes.append([f"images/{i:03d}.png", "error", 4, 4, 13, 13])
        if brk:
            img[26:36, 26:36, 1] = 255
            boxes.append([f"images/{i:03d}.png", "break", 26, 26, 35, 35])
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), img)
        good = not (error or brk) and length
        rows.append([f"images/{i:03d}.png", good, error, brk, length])
    with open(root / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["name", *LABELS], *rows])
    with open(root / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["name", "label", "x0", "y0", "x1", "y1"], *boxes])
    from pi_inspect.edge.synth.dataset import write_meanings

    write_meanings(root)  # the seam labels' declaration: length alarms when absent
    return root


def _class_folders(root: Path, per_class: int = 6) -> Path:
    rng = np.random.default_rng(1)
    for k, name in enumerate(["bad", "good", "odd"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 40, (40, 40, 3), dtype=np.uint8)
            img[:, :, k] += 150
            cv2.imwrite(str(root / name / f"{name}_{i}.png"), img)
    return root


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("ml")
    data = _seam_table(base / "data")
    run = base / "run"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--arch",
            "cnn",
            "--size",
            "32",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--augment",
            "brightness,roll,blur",
            "--out",
            str(run),
        ]
    )
    assert code == 0
    return data, run


def test_multilabel_table_trains_one_epoch_into_a_complete_run(multilabel_run):
    data, run = multilabel_run
    for name in ("model.keras", "run.json", "history.csv", "curves.png", "train.csv", "valid.csv",
                 "dataset.toml"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "multilabel" and info["labels"] == LABELS
    assert info["input_size"] == [32, 32] and info["feature_layer"] == "features"
    assert info["alarms"] == {"error": "above", "break": "above", "length": "below"}
    assert info["data"]["count"] == 24 and len(info["data"]["sha256"]) == 64
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in info["splits"].values())
    assert set(info["versions"]) == {"python", "tensorflow", "keras", "numpy", "pi-inspect"}
    assert info["config"]["epochs"] == 1 and info["config"]["augment"]["blur"] is True
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # header + 1 epoch
    loaded = load_run(run)
    scores = np.asarray(loaded.model(np.zeros((2, 32, 32, 3), np.float32)))
    assert scores.shape == (2, 4) and np.all((scores >= 0) & (scores <= 1))


def test_evaluate_tunes_thresholds_on_validation_and_writes_eval(multilabel_run, capsys):
    data, run = multilabel_run
    assert main(["evaluate", str(run), "--data", str(data), "--robustness"]) == 0
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert list(thresholds) == LABELS and all(0 < t < 1 for t in thresholds.values())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["count"] == 24
    assert set(metrics["per_label"]) == set(LABELS)
    assert [row["condition"] for row in metrics["robustness"]][:2] == ["clean", "blur_s1"]
    for name in ("confusion.png", "uncertain.csv", "misclassified.csv", "robustness.md"):
        assert (run / "eval" / name).is_file(), name
    with open(run / "eval" / "misclassified.csv") as fh:
        assert sum(1 for _ in fh) - 1 == metrics["misclassified"]
    assert load_run(run).thresholds == thresholds
    assert "exact match" in capsys.readouterr().out


def test_gradcam_writes_overlays_montage_and_pointing_game(multilabel_run, tmp_path):
    data, run = multilabel_run
    out = tmp_path / "gc"
    assert main(["gradcam", str(run), str(data), "--out", str(out), "--limit", "4"]) == 0
    assert len(list(out.glob("*_overlay.png"))) == 4 and (out / "montage.png").is_file()
    report = json.loads((out / "gradcam.json").read_text())
    assert report["pointing_game"]["error"]["trials"] == 12  # every error image has a box
    assert 0.0 <= report["pointing_game"]["break"]["score"] <= 1.0


def test_embed_and_similar_return_the_query_itself_first(multilabel_run, tmp_path, capsys):
    data, run = multilabel_run
    index = tmp_path / "index.npz"
    assert main(["embed", str(run), str(data), "--out", str(index)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 24 and "top5_precision" in report
    query = data / "images" / "005.png"
    assert main(["similar", str(run), str(query), "--index", str(index), "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split("\t") == ["rank", "cosine", "image"]
    assert len(lines) == 4 and lines[1].endswith(str(query))


def test_class_folders_train_a_softmax_model_for_one_epoch(tmp_path):
    data = _class_folders(tmp_path / "folders")
    run = tmp_path / "run"
    valid = _class_folders(tmp_path / "valid")
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--valid",
                str(valid),
                "--arch",
                "cnn",
                "--size",
                "32",
                "--epochs",
                "1",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    loaded = load_run(run)
    assert loaded.task == "multiclass" and loaded.labels == ["bad", "good", "odd"]
    # no dataset.toml: the documented default, every class alarms when present
    assert loaded.info["alarms"] == {"bad": "above", "good": "above", "odd": "above"}
    scores = np.asarray(loaded.model(np.zeros((1, 32, 32, 3), np.float32)))
    assert np.isclose(scores.sum(), 1.0, atol=1e-5)
    assert main(["evaluate", str(run), "--data", str(valid)]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert (
        np.asarray(metrics["confusion"]).sum() == 18
        and 0 <= metrics["top1"] <= metrics["top5"] == 1.0
    )


def test_unknown_augmentation_fails_in_one_line_without_training(tmp_path, capsys):
    data = _seam_table(tmp_path / "d", n=6)
    code = main(
        ["train", "--data", str(data), "--augment", "sparkle", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "sparkle" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "model.keras").exists()


def test_a_renamed_run_directory_still_evaluates_from_its_own_split_copies(
    multilabel_run, tmp_path
):
    import shutil

    data, run = multilabel_run
    moved = run.parent / "renamed"  # same depth: the splits' relative image names still resolve
    shutil.copytree(run, moved)
    info = json.loads((moved / "run.json").read_text())
    info["splits"] = {k: str(tmp_path / "gone" / Path(v).name) for k, v in info["splits"].items()}
    (moved / "run.json").write_text(json.dumps(info))
    assert main(["evaluate", str(moved), "--data", str(data)]) == 0
    assert (moved / "thresholds.json").is_file()


def test_pretrained_transfer_arch_trains_frozen_then_fine_tunes(multilabel_run, tmp_path):
    import keras

    data, _ = multilabel_run
    weights = tmp_path / "mobilenet_notop.weights.h5"
    keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None
    ).save_weights(weights)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--arch",
                "mobilenetv2",
                "--size",
                "32",
                "--epochs",
                "1",
                "--fine-tune-epochs",
                "1",
                "--weights",
                str(weights),
                "--out",
                str(run),
            ]
        )
        == 0
    )
    rows = (run / "history.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]  # phase 1 (frozen) then phase 2
    lrs = [float(r.split(",")[rows[0].split(",").index("learning_rate")]) for r in rows[1:]]
    assert lrs[1] == pytest.approx(lrs[0] / 10)  # fine-tuning at a tenth of the rate
    assert load_run(run).info["weights"] == str(weights)


def test_cosine_schedule_decays_the_rate_within_the_run_and_skips_the_plateau_callback(
    multilabel_run, tmp_path
):
    data, _ = multilabel_run
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--arch", "cnn", "--size", "32", "--epochs", "3"]
    args += ["--batch-size", "8", "--augment", "none", "--schedule", "cosine", "--out", str(run)]
    assert main(args) == 0
    rows = (run / "history.csv").read_text().strip().splitlines()
    lrs = [float(r.split(",")[rows[0].split(",").index("learning_rate")]) for r in rows[1:]]
    assert len(lrs) == 3 and lrs[0] > lrs[1] > lrs[2]  # decays every epoch, never held flat
    assert lrs[0] <= 1e-3
    assert json.loads((run / "run.json").read_text())["config"]["schedule"] == "cosine"


def test_unknown_schedule_is_a_config_error(tmp_path):
    from pi_inspect.edge.errors import ConfigError
    from pi_inspect.train.fit import TrainConfig, train

    with pytest.raises(ConfigError, match="--schedule"):
        train(TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), schedule="steps"))


def _labelled_recording(root: Path, frames: int = 40) -> Path:
    """One synthetic seam video, every frame saved by the labelling tool's store with its truth:
    what ``pi-inspect label line.mp4 --out DIR`` leaves once a person has labelled it."""
    from pi_inspect.edge.label.sources import open_frames
    from pi_inspect.edge.label.store import TableStore
    from pi_inspect.edge.synth.video import render_video

    truth = render_video(root / "line.mp4", frames=frames, seed=3, size=(64, 48), fps=15.0)
    store = TableStore(root / "labelled", tuple(LABELS))
    video = open_frames(root / "line.mp4")
    try:
        for i in range(len(video)):
            values = [truth.frame_labels(i)[label] for label in LABELS]
            store.save(video.name(i), video.source_id(i), video.read(i), values)
    finally:
        video.close()
    return root / "labelled"


def test_one_labelled_recording_trains_without_valid_cut_in_time_blocks(tmp_path, caplog):
    data = _labelled_recording(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--arch", "cnn", "--size", "16", "--epochs", "1",
            "--batch-size", "8", "--out", str(run)]
    with caplog.at_level(logging.INFO, logger="pi_inspect.train.fit"):
        assert main(argv) == 0
    said = [r.getMessage() for r in caplog.records if "one recording" in r.getMessage()]
    assert len(said) == 1 and "(line)" in said[0] and "3 frames clear" in said[0], said
    train, valid = read_table(run / "train.csv"), read_table(run / "valid.csv")
    assert len(valid) == 6 and len(train) >= 40 - 6 - 2 * 3  # 15 %; one block, two cuts at most
    for a in (frame_number(p.name) for p in train.paths):
        assert all(abs(a - frame_number(p.name)) > 3 for p in valid.paths)
    assert len((run / "history.csv").read_text().strip().splitlines()) == 2  # trained an epoch


def test_a_run_started_from_another_is_compared_with_it_per_alarm_condition(
    multilabel_run, tmp_path, capsys
):
    data, old = multilabel_run
    new = tmp_path / "v2"
    args = ["train", "--data", str(data), "--size", "32", "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--init", str(old), "--out", str(new)]) == 0
    init = json.loads((new / "run.json").read_text())["init"]
    assert init["run"] == str(old) and init["fresh"] == [] and init["new_labels"] == []
    assert main(["evaluate", str(old), "--data", str(data)]) == 0  # its own thresholds
    capsys.readouterr()
    assert main(["evaluate", str(new), "--data", str(data), "--compare", str(old)]) == 0
    out = capsys.readouterr().out
    assert f"against {old}" in out and "length absent" in out
    rows = json.loads((new / "eval" / "comparison.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["error", "break", "length"]
    assert all(r["old_recall"] is not None and 0 <= r["old_recall"] <= 1 for r in rows)
