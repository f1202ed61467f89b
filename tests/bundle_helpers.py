"""Real bundles for tests: the demo bundle's int8 model and golden set under a manifest a test
can change, written with correct hashes even when the manifest itself is broken on purpose."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.bundle import default_bundle_dir

DEMO = default_bundle_dir()
CARRIED = ("model.tflite", "golden.npz")  # the float reference stays out: smaller copies


def demo_manifest() -> dict[str, Any]:
    """The demo manifest without its float reference model."""
    data = json.loads((DEMO / "manifest.json").read_text())
    data["files"] = {name: "" for name in CARRIED}
    data["reference_model"] = None
    return data


def write_raw_manifest(bundle: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as the manifest, hashing each listed file that exists, without checking
    anything else: how a broken manifest reaches a Pi with valid hashes."""
    files = data.get("files")
    if isinstance(files, dict):
        data = dict(data)
        data["files"] = {
            name: hashlib.sha256((bundle / name).read_bytes()).hexdigest()
            if isinstance(name, str) and (bundle / name).is_file()
            else digest
            for name, digest in files.items()
        }
    (bundle / "manifest.json").write_text(json.dumps(data, indent=1))


def make_bundle(
    root: Path,
    name: str = "seam",
    version: str | int = 1,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """A loadable bundle named ``name`` at ``version``; ``edit`` changes its manifest first."""
    bundle = root / f"src-{name}-{version}"
    bundle.mkdir(parents=True)
    for file in CARRIED:
        shutil.copyfile(DEMO / file, bundle / file)
    data = demo_manifest()
    data["name"], data["version"] = name, str(version)
    if edit is not None:
        edit(data)
    write_raw_manifest(bundle, data)
    return bundle


# --- a tiny anomaly bundle, built with TensorFlow --------------------------------------------

ANOMALY_SIZE = 96  # as the demo classifier: the two run on the same frame
ANOMALY_CELL = 8  # one map cell per 8x8 pixels: a 12x12 map
ANOMALY_MEANING = "anything unlike the good parts it was trained on"


def bright_patch(
    size: int = ANOMALY_SIZE, at: tuple[int, int] = (0, 0), cells: int = 2, base: int = 90
) -> np.ndarray:
    """An RGB frame of grey ``base`` with a white square of ``cells`` map cells at cell ``at``
    (column, row): what the tiny anomaly model calls anomalous, exactly there."""
    rgb = np.full((size, size, 3), base, np.uint8)
    x, y = at[0] * ANOMALY_CELL, at[1] * ANOMALY_CELL
    rgb[y : y + cells * ANOMALY_CELL, x : x + cells * ANOMALY_CELL] = 255
    return rgb


def anomaly_keras_model(size: int = ANOMALY_SIZE):
    """Weights set by hand, nothing trained: each 8x8 cell's mean brightness b in [0, 1] gives
    the cell's anomaly sigmoid(20 * (b - 0.7)); the score is the map's maximum. A grey frame
    (b = 0.35) scores 0.001, a white cell 0.998."""
    import keras

    pixels = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0)(pixels)
    x = keras.layers.AveragePooling2D(ANOMALY_CELL, name="trunk")(x)
    x = keras.layers.Conv2D(1, 1, activation="sigmoid", name="cells")(x)
    cells = size // ANOMALY_CELL
    amap = keras.layers.Reshape((cells, cells), name="anomaly_map")(x)
    score = keras.layers.GlobalMaxPooling2D(name="anomaly_score")(x)
    model = keras.Model(pixels, {"anomaly_score": score, "anomaly_map": amap})
    model.get_layer("cells").set_weights(
        [np.full((1, 1, 3, 1), 20.0 / 3.0, np.float32), np.array([-14.0], np.float32)]
    )
    return model


def anomaly_tflite(size: int = ANOMALY_SIZE) -> bytes:
    """The tiny model as full-int8 TFLite with uint8 input and outputs, signature
    ``serving_default`` taking ``pixels`` and giving ``anomaly_score`` and ``anomaly_map``."""
    import contextlib
    import io
    import tempfile

    import keras
    import tensorflow as tf

    model = anomaly_keras_model(size)

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="pixels")])
    def serve(pixels):
        out = model(pixels, training=False)
        return {"anomaly_score": out["anomaly_score"], "anomaly_map": out["anomaly_map"]}

    rng = np.random.default_rng(0)
    calibration = [rng.integers(0, 256, (size, size, 3)).astype(np.float32) for _ in range(8)]
    calibration += [bright_patch(size, (i, i), base=b).astype(np.float32) for i, b in ((0, 0), (5, 90), (9, 200))]
    calibration += [np.zeros((size, size, 3), np.float32), np.full((size, size, 3), 255.0, np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", serve)
        with contextlib.redirect_stdout(io.StringIO()):  # write_out lists every endpoint
            archive.write_out(tmp)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([img[None]] for img in calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.uint8
        return conv.convert()


def anomaly_manifest(threshold: float = 0.5, size: int = ANOMALY_SIZE) -> dict[str, Any]:
    cells = size // ANOMALY_CELL
    return {
        "name": "seam-anomaly-tiny",
        "version": "1",
        "task": "anomaly",
        "labels": ["anomaly"],
        "thresholds": {"anomaly": threshold},
        "alarms": {"anomaly": "above"},
        "meanings": {"anomaly": {"alarm": "present", "meaning": ANOMALY_MEANING}},
        "input": {"width": size, "height": size, "channels": 3, "dtype": "uint8", "colour": "rgb"},
        "quantization": "int8",
        "model": "model.tflite",
        "signature": "serving_default",
        "input_name": "pixels",
        "outputs": {"scores": "anomaly_score", "map": "anomaly_map"},
        "anomaly": {"false_alarm_target": 0.005, "calibrated_on": 4, "map_size": [cells, cells]},
        "files": {"model.tflite": "", "golden.npz": ""},
    }


def write_anomaly_bundle(bundle: Path, tflite: bytes, size: int = ANOMALY_SIZE) -> Path:
    """A bundle as ``convert`` writes one: the model, a golden set scored by TensorFlow's own
    interpreter, the manifest with every file's sha256."""
    import tensorflow as tf

    from pi_inspect.edge.bundle import golden_entry, write_golden, write_manifest

    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "model.tflite").write_bytes(tflite)
    inputs = np.stack([bright_patch(size, (3, 4)), bright_patch(size, (0, 0), cells=0)])
    interp = tf.lite.Interpreter(model_content=tflite)
    runner = interp.get_signature_runner("serving_default")
    out = runner.get_output_details()["anomaly_score"]
    scale, zero = out["quantization"]
    scores = [
        (runner(pixels=img[None])["anomaly_score"].astype(np.float32) - zero) * scale for img in inputs
    ]
    write_golden(bundle, "golden.npz", inputs)
    data = anomaly_manifest(size=size)
    data["golden"] = golden_entry("golden.npz", np.concatenate(scores).reshape(len(inputs), 1))
    write_manifest(bundle, data)
    return bundle
