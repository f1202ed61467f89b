"""Good-only training end to end on tiny data: train, evaluate, convert to int8, load on the
edge runtime, and the converter's checks (no float op, parity, threshold, golden set)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

SIZE = 32  # a 4x4 anomaly map: small enough to train in seconds, big enough to point


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Good images (seed 11), a labelled test set (seed 12), a two-epoch run and its bundle.

    So short a run has not learned enough for int8 to follow its scores closely; the parity
    check itself is proven on its own below, so the conversion here may pass --allow-drop."""
    from pi_inspect.convert.pipeline import ConvertOptions, convert_run
    from pi_inspect.edge.synth.dataset import generate_dataset
    from pi_inspect.train.anomaly.fit import AnomalyConfig, train_anomaly

    root = tmp_path_factory.mktemp("anomaly")
    generate_dataset(root / "good", 72, seed=11, size=(48, 48), good_only=True, workers=1)
    generate_dataset(root / "test", 60, seed=12, size=(48, 48), workers=1)
    run = train_anomaly(
        AnomalyConfig(
            data=str(root / "good"), out=str(root / "run"), size=SIZE, batch_size=16,
            false_alarms=0.05, verbose=0,
        )
    )
    result = convert_run(
        run,
        root / "bundle",
        ConvertOptions(
            test=root / "test", calib_count=40, reference=False, name="tiny", allow_drop=True
        ),
    )
    return root, run, result


def test_good_only_run_records_its_task_threshold_and_held_out_split(tiny):
    root, run, _ = tiny
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "anomaly" and info["labels"] == ["anomaly"]
    assert info["map_size"] == [SIZE // 8, SIZE // 8]
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert 0.0 <= thresholds["anomaly"] <= 1.0
    held = (run / "holdout_good.csv").read_text().splitlines()[1:]
    trained = (run / "train_good.csv").read_text().splitlines()[1:]
    assert held and trained and not set(held) & set(trained)
    assert info["anomaly"]["calibrated_on"] == len(held)


def test_anomaly_bundle_is_full_int8_with_named_outputs_and_loads_on_the_edge_runtime(tiny):
    from pi_inspect.edge.global_score import GlobalScore
    from pi_inspect.edge.runtime import load_classifier

    root, _, result = tiny
    ops = {op.name for op in result.ops}
    assert "QUANTIZE" in ops or "CONV_2D" in ops
    assert not [op for op in result.ops if op.is_float]
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    assert manifest["task"] == "anomaly"
    assert manifest["outputs"] == {"scores": "anomaly_score", "map": "anomaly_map"}
    assert manifest["anomaly"]["map_size"] == [SIZE // 8, SIZE // 8]
    parity = manifest["parity"]
    assert -1.0 <= parity["pearson"] <= 1.0 and parity["auroc_int8"] is not None
    with load_classifier(root / "bundle") as model:  # runs the golden set too
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        pred = model.predict(img)
        assert pred.scores.shape == (1,) and 0.0 <= pred.scores[0] <= 1.0
        assert pred.features.shape == (SIZE // 8, SIZE // 8)
        heat = model.heatmap(pred, "anomaly")
        # the score is the map's (its peak, on a 4x4 map) or the global score ("not a good part"),
        # the higher one
        spec = model.manifest.anomaly.global_
        mapped = GlobalScore.load(root / "bundle", spec).score(img)
        assert max(heat.max(), mapped) == pytest.approx(pred.scores[0], abs=1 / 128)
    glob = manifest["anomaly"]["global"]
    assert glob["memory"] in manifest["files"] and glob["scale"] > 0 and glob["mapping"] == "logit"
    memory = np.load(root / "bundle" / glob["memory"], allow_pickle=False)
    trained = (root / "run" / "train_good.csv").read_text().splitlines()[1:]
    assert memory.dtype == np.float16 and memory.shape == (len(trained), 16 * 16 * 3)
    held = (root / "run" / "holdout_good.csv").read_text().splitlines()[1:]
    assert sum(manifest["reference"]["good_scores"]["anomaly"]) == len(held)  # for drift


def test_int8_threshold_keeps_held_out_false_alarms_under_target(tiny):
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.runtime import int8_scores
    from pi_inspect.train.anomaly.fit import good_paths

    root, run, _ = tiny
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    images, _ = load_images(good_paths(run / "holdout_good.csv"), (SIZE, SIZE))
    scores, _ = int8_scores(root / "bundle", images)
    assert (scores > manifest["thresholds"]["anomaly"]).mean() <= 0.05


def test_converter_refuses_an_int8_model_whose_scores_do_not_follow_the_float_model():
    from pi_inspect.convert.anomaly import AnomalyParity, check_anomaly_parity
    from pi_inspect.edge.errors import ConversionError

    bad = AnomalyParity(100, 0.95, 0.99, 0.97, 0.1, 0.5, 0.9, 0.5, 0.5)
    with pytest.raises(ConversionError, match="correlation 0.9500.*AUROC drops by 0.0200"):
        check_anomaly_parity(bad, allow_drop=False)
    check_anomaly_parity(bad, allow_drop=True)
    check_anomaly_parity(AnomalyParity(100, 0.995, 0.99, 0.987, 0, 0, 1, 0.5, 0.5), False)


def test_evaluate_reports_auroc_per_defect_kind_pointing_and_histogram(tiny, capsys):
    from pi_inspect.edge.cli import main

    root, run, _ = tiny
    assert main(["evaluate", str(run), "--data", str(root / "test")]) == 0
    stdout = capsys.readouterr().out
    result = json.loads((run / "eval" / "anomaly.json").read_text())
    assert set(result["kinds"]) == {"error", "break", "length"}  # 'length' alarms when absent
    for m in result["kinds"].values():
        assert 0.0 <= m["auroc"] <= 1.0 and m["support"] > 0
    assert set(result["pointing"]) <= {"error", "break"} and result["pointing"]
    assert set(result["pointing_any"]) == set(result["pointing_all"])
    assert (run / "eval" / "histogram.png").stat().st_size > 1000
    assert "AUROC" in stdout and "false alarms" in stdout


def test_train_command_trains_an_anomaly_model_from_a_folder_of_plain_images(
    tiny, tmp_path, capsys
):
    import shutil

    from pi_inspect.edge.cli import main

    root, _, _ = tiny
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((root / "good" / "images").glob("*.png"))[:48]:
        shutil.copy(p, flat / p.name)
    args = ["train", "--task", "anomaly", "--data", str(flat), "--size", "16", "--epochs", "1"]
    code = main([*args, "--out", str(tmp_path / "run")])
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert code == (0 if info["validation"]["learned"] else 3)  # one epoch may learn nothing
    assert info["data"]["count"] == 48 and info["task"] == "anomaly"
    assert info["config"]["epochs"] == 1 and info["config"]["batch_size"] == 64
    if code == 0:
        assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == tmp_path / "run"
