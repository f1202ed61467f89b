"""Converter and bundle: verified int8, refusal of bad bundles, identical scores across runtimes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from convert_helpers import LABELS, SIZE, make_images, make_run

from pi_inspect.edge.bundle import read_manifest, verify_bundle
from pi_inspect.edge.errors import BundleError, ConversionError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory):
    from pi_inspect.convert.pipeline import ConvertOptions, convert_run

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return convert_run(run_dir, out, ConvertOptions())


@pytest.mark.parametrize("head_hidden", [(), (16,)], ids=["gap-dense", "hidden-dense"])
def test_on_device_heatmaps_match_keras_gradcam(tmp_path, head_hidden):
    """numpy Grad-CAM from the int8 feature map tracks Keras Grad-CAM on the float model."""
    from pi_inspect.convert.pipeline import ConvertOptions, convert_run

    run = make_run(tmp_path, head_hidden=head_hidden)
    result = convert_run(run, tmp_path / "bundle", ConvertOptions())
    pearson = result.parity.heatmap_pearson
    assert set(pearson) == set(LABELS)
    for label, r in pearson.items():
        assert r >= 0.95, f"{label}: mean Pearson {r:.3f}"
    assert result.manifest.head is not None
    assert len(result.manifest.head.layers) == 1 + len(head_hidden)


def test_int8_bundle_has_no_float_ops_and_keeps_accuracy(bundle):
    from pi_inspect.convert.verify import float_ops

    assert float_ops(bundle.ops) == []
    names = {op.name for op in bundle.ops}
    assert "CONV_2D" in names
    assert bundle.parity.worst_drop <= 1.0
    # the model really learned the task, so parity is measured on something meaningful
    assert min(bundle.parity.float_accuracy.values()) >= 90.0


def test_manifest_carries_contract_fields(bundle):
    m = read_manifest(bundle.bundle_dir)
    raw = m.raw
    assert m.labels == tuple(LABELS)
    assert m.input_size == (SIZE, SIZE)
    assert m.input_dtype == "uint8" and m.quantization == "int8"
    assert set(m.files) == {"model.tflite", "model_float32.tflite", "golden.npz"}
    assert m.golden is not None and 1 <= len(m.golden.scores) <= 6
    assert raw["parity"]["labels"] == LABELS
    assert raw["heatmap"]["layers"][-1]["name"] == "logits"
    assert m.head is not None and m.head.layers[-1].kernel.shape == (
        m.head.layers[-1].kernel.shape[0],
        2,
    )
    for key in ("source_run", "created", "thresholds", "alarms", "outputs"):
        assert key in raw
    # the good test images' score histograms, which the station's drift check compares against
    assert m.reference_model == "model_float32.tflite"  # beside the drift reference, not under it
    assert set(m.reference) == set(LABELS) and all(len(h) == 10 for h in m.reference.values())
    assert len({sum(h) for h in m.reference.values()}) == 1  # the same good images for each


def test_golden_set_records_what_the_edge_runtime_computes(bundle):
    from pi_inspect.edge.bundle import golden_inputs
    from pi_inspect.edge.runtime import load_classifier, run_golden

    m = read_manifest(bundle.bundle_dir)
    inputs = golden_inputs(bundle.bundle_dir, m)
    assert inputs.shape == (len(m.golden.scores), SIZE, SIZE, 3)
    assert len({x.tobytes() for x in inputs}) == len(inputs)  # distinct images
    with load_classifier(bundle.bundle_dir) as clf:
        assert run_golden(clf) <= 1e-6  # same runtime, same machine: the same scores


def test_float_op_left_in_int8_model_is_refused(run_dir):
    """A float32 conversion listed as if it were int8 must fail the integer-only check."""
    from pi_inspect.convert.pipeline import load_run
    from pi_inspect.convert.quantize import convert_model
    from pi_inspect.convert.verify import check_integer_only, list_ops

    model, _, _ = load_run(run_dir)
    ops = list_ops(convert_model(model, "float32"))
    with pytest.raises(ConversionError, match="left .* op\\(s\\) in float"):
        check_integer_only(ops)


def test_accuracy_drop_beyond_tolerance_is_refused():
    from pi_inspect.convert.verify import check_parity, parity_report

    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    good = y * 0.9 + 0.05
    bad = good.copy()
    bad[0, 0] = 0.1  # one of four images flips: 25 points lost on 'bright'
    report = parity_report(LABELS, "multilabel", y, good, bad, {}, tolerance_points=1.0)
    assert report.drop_points["bright"] == 25.0
    with pytest.raises(ConversionError, match="loses 25.00 accuracy points on 'bright'"):
        check_parity(report, allow_drop=False)
    check_parity(report, allow_drop=True)


def test_tampered_model_file_is_refused(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle.bundle_dir, copy)
    data = bytearray((copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 .* does not match"):
        verify_bundle(copy)


def test_unknown_schema_version_is_refused(bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle.bundle_dir, copy)
    raw = json.loads((copy / "manifest.json").read_text())
    raw["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="unknown manifest schema_version 99"):
        verify_bundle(copy)


def test_bundle_for_wrong_input_size_is_refused(bundle):
    from pi_inspect.edge.runtime import load_classifier

    with pytest.raises(
        BundleError, match="model input is 32x32, this device is configured for 96x96"
    ):
        load_classifier(bundle.bundle_dir, expected_size=(96, 96))


def test_missing_bundle_is_refused_in_one_line(tmp_path):
    from pi_inspect.edge.runtime import load_classifier

    with pytest.raises(BundleError) as err:
        load_classifier(tmp_path / "nope")
    assert "\n" not in str(err.value)


def test_litert_and_tensorflow_lite_give_identical_scores(bundle, tmp_path):
    import tensorflow as tf

    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.edge.runtime import load_classifier

    ds = read_dataset(make_images(tmp_path / "imgs", 12, seed=7))
    x, _ = load_images(ds.paths, (SIZE, SIZE))
    with (
        load_classifier(bundle.bundle_dir, backend="litert") as a,
        load_classifier(bundle.bundle_dir, interpreter_factory=tf.lite.Interpreter) as b,
    ):
        for img in x:
            pa, pb = a.predict(img), b.predict(img)
            np.testing.assert_array_equal(pa.scores, pb.scores)
            np.testing.assert_array_equal(pa.features, pb.features)


TFLITE_VENV = Path(__file__).resolve().parents[1] / ".venv-tflite" / "bin" / "python"


@pytest.mark.tflite_runtime
def test_tflite_runtime_and_litert_give_identical_scores(bundle, tmp_path):
    """The legacy runtime (numpy<2, its own venv made by tests/run.sh) agrees with LiteRT."""
    if not TFLITE_VENV.exists():
        pytest.skip("no .venv-tflite (tests/run.sh creates it with tflite-runtime and numpy<2)")
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.edge.runtime import load_classifier

    ds = read_dataset(make_images(tmp_path / "imgs", 8, seed=11))
    x, _ = load_images(ds.paths, (SIZE, SIZE))
    np.save(tmp_path / "x.npy", x)
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            str(TFLITE_VENV),
            str(root / "tests" / "tflite_runtime_scores.py"),
            str(bundle.bundle_dir),
            str(tmp_path / "x.npy"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["backend"] == "tflite_runtime" and out["numpy"].startswith("1.")
    with load_classifier(bundle.bundle_dir, backend="litert") as clf:
        ref = [clf.predict(img) for img in x]
    np.testing.assert_array_equal(
        np.array(out["scores"], np.float32), np.stack([p.scores for p in ref])
    )
    # Feature maps may differ by one quantization step where the two runtimes' kernels round
    # differently (seen: 2% of elements); the scores above must not differ at all.
    feats, ref_feats = (
        np.array(out["features"], np.float32),
        np.stack([p.features for p in ref[:2]]),
    )
    step = np.diff(np.unique(ref_feats)).min()
    assert np.abs(feats - ref_feats).max() <= step * 1.01


def test_convert_refuses_an_existing_out_before_it_starts(tmp_path, capsys):
    from pi_inspect.edge.cli import main

    out = tmp_path / "bundle"
    out.mkdir()
    # the run does not even exist: the refusal comes before any loading or conversion
    assert main(["convert", str(tmp_path / "no-run"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out} exists; choose another --out or pass --force" in err and "no-run" not in err


def test_the_view_a_run_was_trained_on_is_recorded_in_the_manifest(run_dir, tmp_path):
    from pi_inspect.convert.pipeline import ConvertOptions, convert_run

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    info = json.loads((run / "run.json").read_text())
    info["view"] = {"roi": [0.1, 0.0, 0.5, 1.0], "rotate": 90, "hflip": False, "vflip": True}
    (run / "run.json").write_text(json.dumps(info))
    result = convert_run(run, tmp_path / "bundle", ConvertOptions())
    assert read_manifest(result.bundle_dir).raw["view"] == info["view"]
