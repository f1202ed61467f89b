"""Keras model -> SavedModel -> TFLite, full-integer int8 (or float16/float32).

The exported signature is ``serving_default`` with one input ``pixels`` (1, h, w, 3) carrying
raw 0..255 RGB values and two named outputs: ``scores`` and ``features`` (the last
convolutional feature map, for heat maps on the device). Names, not positions, bind them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from pi_inspect.edge.errors import ConversionError

log = logging.getLogger(__name__)

Quant = Literal["int8", "float16", "float32"]
FEATURE_LAYER = "features"
SIGNATURE = "serving_default"
INPUT_NAME = "pixels"


def export_saved_model(
    model, out_dir: Path, with_features: bool = True, outputs: dict | None = None
) -> Path:
    """Export ``model`` with a fixed batch of 1 and named outputs via Keras' ExportArchive.

    ``outputs`` (signature name -> Keras tensor) replaces the classifier's ``scores`` and
    ``features`` (an anomaly model exports ``anomaly_score`` and ``anomaly_map``)."""
    import keras
    import tensorflow as tf

    _, h, w, c = model.input_shape
    outputs = dict(outputs) if outputs is not None else {"scores": model.output}
    if with_features and "features" not in outputs and "scores" in outputs:
        try:
            outputs["features"] = model.get_layer(FEATURE_LAYER).output
        except ValueError:
            raise ConversionError(
                f"model has no layer named '{FEATURE_LAYER}': cannot export heat-map features"
            ) from None
    serving = keras.Model(model.inputs, outputs)

    @tf.function(input_signature=[tf.TensorSpec((1, h, w, c), tf.float32, name=INPUT_NAME)])
    def serve(pixels):
        out = serving(pixels, training=False)
        return {name: out[name] for name in outputs}

    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(SIGNATURE, serve)
    with contextlib.redirect_stdout(io.StringIO()):  # write_out prints every endpoint
        archive.write_out(str(out_dir))
    return out_dir


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Raw, unaugmented 0..255 pixels, one at a time: the Rescaling layer folds into the input."""

    def gen() -> Iterator[list[np.ndarray]]:
        for img in images:
            yield [img[None].astype(np.float32)]

    return gen


def convert_saved_model(
    saved_model: Path,
    quant: Quant,
    calibration: np.ndarray | None = None,
    io_type: Literal["uint8", "int8"] = "uint8",
) -> bytes:
    """Run the TFLite converter; int8 requires calibration images (n, h, w, 3) uint8."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    if quant == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("int8 conversion needs calibration images (--calib)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative_dataset(calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.uint8 if io_type == "uint8" else tf.int8
        conv.inference_input_type = dtype
        conv.inference_output_type = dtype
    elif quant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif quant != "float32":
        raise ConversionError(f"unknown quantization {quant!r} (int8, float16, float32)")
    try:
        return conv.convert()
    except Exception as exc:  # the converter raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"TFLite conversion ({quant}) failed: {first}") from exc


def convert_model(
    model,
    quant: Quant,
    calibration: np.ndarray | None = None,
    io_type: Literal["uint8", "int8"] = "uint8",
    with_features: bool = True,
    outputs: dict | None = None,
) -> bytes:
    """Export through a temporary SavedModel and convert."""
    from pi_inspect.train.quiet import stderr_silenced, verbose

    with tempfile.TemporaryDirectory(prefix="pi-inspect-export-") as tmp:
        saved = export_saved_model(
            model, Path(tmp) / "saved_model", with_features=with_features, outputs=outputs
        )
        with stderr_silenced(not verbose()):  # the converter's C++ logs; errors still raise
            return convert_saved_model(saved, quant, calibration, io_type)


def take(images: Iterable[np.ndarray], count: int, seed: int = 0) -> np.ndarray:
    """A reproducible sample of at most ``count`` images."""
    arr = np.asarray(images)
    if len(arr) <= count:
        return arr
    idx = np.random.default_rng(seed).choice(len(arr), size=count, replace=False)
    return arr[np.sort(idx)]
