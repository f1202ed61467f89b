"""Load a bundle into an interpreter and classify frames.

Backends, in the order ``auto`` tries them:

- ``litert``: ai-edge-litert, the maintained runtime (numpy 2, Python 3.10-3.13, aarch64 wheels);
- ``tflite_runtime``: the legacy runtime for Bookworm / Python 3.11 with numpy<2.

On the workstation, ``convert`` passes TensorFlow's ``tf.lite.Interpreter`` in as
``interpreter_factory``: this module never imports TensorFlow itself.

Inputs and outputs are bound by the model's signature names (``pixels`` in, ``scores`` and
``features`` out; an anomaly bundle's ``anomaly_score`` and ``anomaly_map``, as its manifest's
``outputs`` name them), never by position: the converter does not keep output order stable.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.bundle import Manifest, default_bundle_dir, golden_inputs, verify_bundle
from pi_inspect.edge.data.meanings import LabelMeaning
from pi_inspect.edge.errors import BundleError, MissingExtraError
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.global_score import GlobalScore
from pi_inspect.edge.heatmap import gradcam

log = logging.getLogger(__name__)

InterpreterFactory = Callable[..., Any]  # (model_path=..., num_threads=...) -> Interpreter

_BACKEND_MODULES = {
    "litert": ("ai_edge_litert.interpreter", "edge"),
    "tflite_runtime": ("tflite_runtime.interpreter", "tflite"),
}


def backend_factory(backend: str = "auto") -> tuple[str, InterpreterFactory]:
    """Return (name, Interpreter class) for a backend; ``auto`` prefers LiteRT."""
    names = list(_BACKEND_MODULES) if backend == "auto" else [backend]
    if backend != "auto" and backend not in _BACKEND_MODULES:
        raise BundleError(f"unknown runtime backend {backend!r} (choose: auto, {', '.join(_BACKEND_MODULES)})")
    errors = []
    for name in names:
        module, _extra = _BACKEND_MODULES[name]
        try:
            return name, importlib.import_module(module).Interpreter
        except ImportError as exc:  # includes a numpy ABI mismatch raised as ImportError
            errors.append(f"{name}: {exc}".splitlines()[0])
    extra = _BACKEND_MODULES[names[0]][1]
    raise MissingExtraError(
        f"no TFLite runtime could be imported ({'; '.join(errors)}): "
        f"pip install 'pi-inspect[{extra}]'"
    )


@dataclass(frozen=True)
class _TensorIO:
    index: int
    dtype: np.dtype
    scale: float
    zero_point: int
    shape: tuple[int, ...]


def _tensor_io(details: dict[str, Any]) -> _TensorIO:
    scale, zp = details.get("quantization", (0.0, 0))
    return _TensorIO(
        index=int(details["index"]),
        dtype=np.dtype(details["dtype"]),
        scale=float(scale),
        zero_point=int(zp),
        shape=tuple(int(s) for s in details["shape"]),
    )


def _dequantize(q: np.ndarray, io: _TensorIO) -> np.ndarray:
    if io.scale == 0.0:  # float tensor
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - io.zero_point) * io.scale


@dataclass(frozen=True)
class Prediction:
    """Scores (dequantized, in [0, 1]) and, when asked for, the feature map (a classifier with
    a heat-map head) or the anomaly map (an anomaly bundle)."""

    scores: np.ndarray  # float32 (k,)
    features: np.ndarray | None  # float32 (h, w, c) feature map, or (mh, mw) anomaly map


class Classifier:
    """A loaded bundle: ``predict`` a prepared RGB frame, explain it with ``heatmap``.

    Not thread-safe: one inference at a time (the daemon owns it from its inference thread).
    """

    def __init__(
        self,
        manifest: Manifest,
        bundle_dir: Path,
        interpreter: Any,
        backend: str,
    ) -> None:
        self.manifest = manifest
        self.bundle_dir = bundle_dir
        self.backend = backend
        self._interp = interpreter
        self._closed = False
        signatures = interpreter.get_signature_list()
        if manifest.signature not in signatures:
            raise BundleError(
                f"bundle {bundle_dir}: model has no signature {manifest.signature!r} "
                f"(it has {sorted(signatures)})"
            )
        runner = interpreter.get_signature_runner(manifest.signature)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        if manifest.input_name not in inputs:
            raise BundleError(
                f"bundle {bundle_dir}: model has no input named {manifest.input_name!r} "
                f"(it has {sorted(inputs)})"
            )
        self._in = _tensor_io(inputs[manifest.input_name])
        if self._in.dtype != np.dtype(manifest.input_dtype):
            raise BundleError(
                f"bundle {bundle_dir}: model input is {self._in.dtype}, the manifest says "
                f"{manifest.input_dtype}"
            )
        want = (1, manifest.input_height, manifest.input_width, 3)
        if self._in.shape != want:
            raise BundleError(
                f"bundle {bundle_dir}: model input shape {self._in.shape} does not match the "
                f"manifest's {manifest.input_width}x{manifest.input_height}"
            )
        scores_name = manifest.outputs.get("scores", "scores")
        if scores_name not in outputs:
            raise BundleError(f"bundle {bundle_dir}: model has no output named {scores_name!r}")
        self._scores = _tensor_io(outputs[scores_name])
        if self._scores.shape[-1] != len(manifest.labels):
            raise BundleError(
                f"bundle {bundle_dir}: model gives {self._scores.shape[-1]} scores for "
                f"{len(manifest.labels)} labels"
            )
        feat_name = manifest.outputs.get("features")
        if feat_name is not None and feat_name not in outputs:
            raise BundleError(f"bundle {bundle_dir}: model has no output named {feat_name!r}")
        self._features = _tensor_io(outputs[feat_name]) if feat_name is not None else None
        self._map = self._anomaly_map(outputs) if manifest.task == "anomaly" else None
        spec = manifest.anomaly.global_ if manifest.anomaly is not None else None
        self._global = GlobalScore.load(bundle_dir, spec) if spec is not None else None
        if self._features is not None and manifest.head is not None:
            channels, head_in = self._features.shape[-1], manifest.head.layers[0].kernel.shape[0]
            if channels != head_in:
                raise BundleError(
                    f"bundle {bundle_dir}: feature map has {channels} channels, the heat-map "
                    f"head takes {head_in}"
                )
        self._input_buf = np.zeros(want, dtype=self._in.dtype)

    def _anomaly_map(self, outputs: dict[str, Any]) -> _TensorIO:
        """The anomaly map output: (1, mh, mw), and the manifest's map size where it names one."""
        name, where = self.manifest.outputs["map"], f"bundle {self.bundle_dir}"
        if name not in outputs:
            raise BundleError(f"{where}: model has no output named {name!r}")
        io = _tensor_io(outputs[name])
        if len(io.shape) != 3 or io.shape[0] != 1 or min(io.shape) < 1:
            raise BundleError(f"{where}: anomaly map {name!r} has shape {io.shape}, expected (1, height, width)")
        spec = self.manifest.anomaly
        if spec is not None and spec.map_size is not None and spec.map_size != (io.shape[2], io.shape[1]):
            w, h = spec.map_size
            raise BundleError(f"{where}: anomaly map is {io.shape[2]}x{io.shape[1]}, the manifest says {w}x{h}")
        return io

    # -- what the daemon needs --------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def task(self) -> str:
        return self.manifest.task

    @property
    def input_size(self) -> tuple[int, int]:
        return self.manifest.input_size

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.manifest.thresholds)

    @property
    def alarms(self) -> dict[str, str]:
        return dict(self.manifest.alarms)

    @property
    def meanings(self) -> dict[str, LabelMeaning]:
        """Per label: when it alarms and what it means (the manifest's declaration)."""
        return dict(self.manifest.meanings)

    @property
    def info(self) -> ModelInfo:
        return self.manifest.info

    @property
    def has_heatmaps(self) -> bool:
        return self._map is not None or (self._features is not None and self.manifest.head is not None)

    def _set_input(self, rgb: np.ndarray) -> None:
        if rgb.shape != self._input_buf.shape[1:]:
            raise ValueError(f"frame shape {rgb.shape} != model input {self._input_buf.shape[1:]}")
        io = self._in
        if io.dtype == np.uint8 and io.scale in (0.0, 1.0) and io.zero_point == 0:
            self._input_buf[0] = rgb
        elif io.dtype == np.int8 and io.scale == 1.0 and io.zero_point == -128:
            self._input_buf[0] = (rgb ^ 0x80).view(np.int8)
        elif io.scale == 0.0:  # float model: raw 0..255 values, rescaling is inside the model
            self._input_buf[0] = rgb
        else:
            info = np.iinfo(io.dtype)
            q = np.round(rgb.astype(np.float32) / io.scale + io.zero_point)
            self._input_buf[0] = np.clip(q, info.min, info.max)
        self._interp.set_tensor(io.index, self._input_buf)

    def predict(self, rgb: np.ndarray, with_features: bool = True) -> Prediction:
        """Run the model on a prepared uint8 RGB frame of the input size."""
        if self._closed:
            raise BundleError("classifier is closed")
        self._set_input(rgb)
        self._interp.invoke()
        scores = _dequantize(self._interp.get_tensor(self._scores.index)[0], self._scores)
        if self._global is not None:  # anomaly: the map's score or "not a good part", if higher
            scores = np.maximum(scores, np.float32(self._global.score(rgb)))
        feats = None
        extra = self._map if self._map is not None else self._features
        if with_features and extra is not None:
            feats = _dequantize(self._interp.get_tensor(extra.index)[0], extra)
        return Prediction(scores=scores, features=feats)

    def heatmap(self, prediction: Prediction, label: str) -> np.ndarray:
        """The heat map (h, w) in [0, 1] for ``label``: an anomaly bundle's own map as it is (not
        stretched per frame, so a good frame stays dark), else on-device Grad-CAM with the
        label's alarm polarity setting the sign."""
        if not self.has_heatmaps or prediction.features is None:
            raise BundleError(f"bundle {self.bundle_dir} carries no heat-map head")
        if self._map is not None:
            if label not in self.labels:
                raise BundleError(f"bundle {self.bundle_dir} has no label {label!r}")
            return np.clip(prediction.features, 0.0, 1.0).astype(np.float32, copy=False)
        index = self.labels.index(label)
        sign = -1.0 if self.manifest.alarms.get(label) == "below" else 1.0
        return gradcam(prediction.features, self.manifest.head, index, sign)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._interp = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_classifier(
    bundle_dir: str | Path | None = None,
    *,
    backend: str = "auto",
    num_threads: int | None = None,
    expected_size: tuple[int, int] | None = None,
    interpreter_factory: InterpreterFactory | None = None,
    check_golden: bool = True,
) -> Classifier:
    """Verify a bundle (hashes, schema, size), load it and run its golden set; ``None`` loads
    the demo bundle. Anything wrong with the bundle is a one-line ``BundleError``."""
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else default_bundle_dir()
    manifest = verify_bundle(bundle_dir, expected_size=expected_size)
    if interpreter_factory is None:
        backend, interpreter_factory = backend_factory(backend)
    else:
        backend = getattr(interpreter_factory, "__module__", "injected")
    threads = num_threads if num_threads is not None else min(4, os.cpu_count() or 1)
    try:
        interp = interpreter_factory(
            model_path=str(bundle_dir / manifest.model_file), num_threads=threads
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError, TypeError, IndexError, KeyError) as exc:
        raise BundleError(f"bundle {bundle_dir}: the runtime cannot load the model ({_first(exc)})") from None
    try:
        clf = Classifier(manifest, bundle_dir, interp, backend)
    except BundleError:
        raise
    except (ValueError, RuntimeError, TypeError, IndexError, KeyError) as exc:
        raise BundleError(f"bundle {bundle_dir}: the model does not fit its manifest ({_first(exc)})") from None
    if check_golden:
        try:
            run_golden(clf)
        except BaseException:
            clf.close()
            raise
    log.debug("loaded %s with %s (%d threads)", bundle_dir, backend, threads)
    return clf


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def run_golden(clf: Classifier) -> float | None:
    """Run the bundle's golden set; the largest score difference, or None without a golden set.

    ``BundleError`` when a score differs from what ``convert`` recorded by more than the
    manifest's tolerance: this runtime, on this machine, does not compute what was measured.
    A bundle made before golden sets existed loads with a warning.
    """
    manifest, bundle_dir = clf.manifest, clf.bundle_dir
    golden = manifest.golden
    if golden is None:
        log.warning(
            "bundle %s has no golden set (an older convert made it): its outputs are not checked "
            "on this machine; re-convert to add one",
            bundle_dir,
        )
        w, h = clf.input_size
        try:  # still prove the model runs at all
            scores = clf.predict(np.zeros((h, w, 3), np.uint8), with_features=False).scores
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"bundle {bundle_dir}: the model does not run ({_first(exc)})") from None
        if not np.isfinite(scores).all():
            raise BundleError(f"bundle {bundle_dir}: the model gives non-finite scores")
        return None
    inputs = golden_inputs(bundle_dir, manifest)
    worst = 0.0
    for i, (rgb, expected) in enumerate(zip(inputs, golden.scores, strict=True)):
        try:
            scores = clf.predict(rgb, with_features=False).scores
        except (ValueError, RuntimeError) as exc:
            raise BundleError(f"bundle {bundle_dir}: golden input {i} does not run ({_first(exc)})") from None
        if not np.isfinite(scores).all():
            raise BundleError(f"bundle {bundle_dir}: golden input {i} gives non-finite scores")
        diff = float(np.max(np.abs(scores - expected)))
        worst = max(worst, diff)
        if diff > golden.tolerance:
            label = manifest.labels[int(np.argmax(np.abs(scores - expected)))]
            raise BundleError(
                f"bundle {bundle_dir}: golden set mismatch: input {i} scores {label!r} "
                f"{float(scores[manifest.labels.index(label)]):.3f}, convert recorded "
                f"{float(expected[manifest.labels.index(label)]):.3f} (tolerance {golden.tolerance:g})"
            )
    return worst


def int8_scores(bundle_dir: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n,), maps (n, mh, mw)) of an anomaly bundle through this runtime, as the device
    computes them: what conversion checks and evaluation reports."""
    with load_classifier(bundle_dir, check_golden=False) as model:
        preds = [model.predict(img) for img in images]
    return np.array([p.scores[0] for p in preds]), np.stack([p.features for p in preds])
