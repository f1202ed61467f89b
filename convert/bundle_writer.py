"""Write a model bundle: the .tflite file(s) and a manifest the edge loader verifies."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge import __version__
from pi_inspect.edge.bundle import (
    GOLDEN_TOLERANCE,
    SCHEMA_VERSION,
    DenseLayer,
    HeadSpec,
    Manifest,
    check_labels,
    golden_entry,
    read_manifest,
    verify_bundle,
    write_golden,
    write_manifest,
)
from pi_inspect.edge.errors import BundleError, ConversionError

MODEL_FILE = "model.tflite"
FLOAT_FILE = "model_float32.tflite"
GOLDEN_FILE = "golden.npz"
GOLDEN_COUNT = 6


def source_name(run_dir: Path) -> str:
    """The run a bundle came from, as the manifest records it: relative to the working folder
    when inside it (``runs/demo``), else the run folder's name; never a machine's full path."""
    import os

    run = Path(run_dir).resolve()
    rel = os.path.relpath(run, Path.cwd().resolve())
    return rel if not rel.startswith("..") else run.name


def check_label_names(labels: list[str]) -> None:
    """Refuse, before any work, labels the Pi could not publish or save (MQTT levels, files)."""
    try:
        check_labels(list(labels), "labels")
    except BundleError as exc:
        raise ConversionError(str(exc)) from None


def pick_golden(scores: np.ndarray, count: int = GOLDEN_COUNT) -> list[int]:
    """Indices of golden inputs among images scored ``scores`` (n, labels): for each label the
    image that scores it highest and the one that scores it lowest, then the first images, so
    the set exercises every output near both ends; at most ``count``, in a fixed order."""
    scores = np.asarray(scores)
    picked: list[int] = []
    for k in range(scores.shape[1]):
        for i in (int(np.argmax(scores[:, k])), int(np.argmin(scores[:, k]))):
            if i not in picked and len(picked) < count:
                picked.append(i)
    for i in range(len(scores)):
        if len(picked) >= count:
            break
        if i not in picked:
            picked.append(i)
    return picked


def record_golden(
    bundle_dir: Path,
    inputs: np.ndarray,
    *,
    interpreter_factory=None,
    tolerance: float = GOLDEN_TOLERANCE,
) -> np.ndarray:
    """Run ``inputs`` (uint8 RGB, n x h x w x 3) through the bundle's model with the edge
    runtime, store them as the golden set and their scores in the manifest; returns the scores.

    The manifest is rewritten (its ``files`` re-hashed), so the bundle stays consistent.
    """
    from pi_inspect.edge.runtime import load_classifier

    bundle_dir = Path(bundle_dir)
    with load_classifier(
        bundle_dir, interpreter_factory=interpreter_factory, check_golden=False
    ) as clf:
        scores = np.stack([clf.predict(x, with_features=False).scores for x in inputs])
    data = dict(read_manifest(bundle_dir).raw)
    write_golden(bundle_dir, GOLDEN_FILE, inputs)
    data["files"] = {**data["files"], GOLDEN_FILE: ""}
    data["golden"] = golden_entry(GOLDEN_FILE, scores, tolerance)
    write_manifest(bundle_dir, data)
    return scores


def head_spec(model) -> HeadSpec:
    """The float head after the ``features`` layer: GAP -> hidden dense layers -> logits."""
    try:
        model.get_layer("gap")
        logits = model.get_layer("logits")
        scores = model.get_layer("scores")
    except ValueError as exc:
        raise ConversionError(
            f"model head is not GAP -> dense -> 'logits' -> 'scores' ({exc}); no on-device heat maps"
        ) from None
    layers: list[DenseLayer] = []
    i = 0
    while True:
        try:
            hidden = model.get_layer(f"head_hidden_{i}")
        except ValueError:
            break
        kernel, bias = hidden.get_weights()
        act = hidden.activation.__name__
        if act not in ("relu", "linear"):
            raise ConversionError(f"hidden head layer {hidden.name} uses {act}; only relu/linear")
        layers.append(DenseLayer(hidden.name, kernel, bias, act))
        i += 1
    kernel, bias = logits.get_weights()
    layers.append(DenseLayer("logits", kernel, bias, "linear"))
    out_act = scores.activation.__name__
    if out_act not in ("sigmoid", "softmax"):
        raise ConversionError(f"output activation {out_act} is neither sigmoid nor softmax")
    return HeadSpec(layers=tuple(layers), output_activation=out_act)


def write_bundle(
    out_dir: Path,
    *,
    model_bytes: bytes,
    float_bytes: bytes | None,
    name: str,
    version: str,
    task: str,
    labels: list[str],
    thresholds: dict[str, float],
    alarms: dict[str, str],
    input_size: tuple[int, int],
    input_dtype: str,
    quantization: str,
    head: HeadSpec | None,
    parity: dict[str, Any] | None,
    source_run: str,
    extra: dict[str, Any] | None = None,
    force: bool = False,
    golden: np.ndarray | None = None,
    meanings: dict[str, dict[str, str]] | None = None,
    outputs: dict[str, str] | None = None,
    aux_files: dict[str, bytes] | None = None,
) -> Manifest:
    """Write into a temporary sibling directory, verify it, then move it into place.

    ``golden``: uint8 RGB inputs whose scores, from the edge runtime on this machine, the
    bundle records as its golden set (the Pi refuses the bundle unless it computes the same).
    ``aux_files``: more files the manifest names (an anomaly bundle's global-score memory).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise ConversionError(f"{out_dir} exists; choose another --out or pass --force")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is read by the service user
    try:
        (tmp / MODEL_FILE).write_bytes(model_bytes)
        files = {MODEL_FILE: ""}
        if float_bytes is not None:
            (tmp / FLOAT_FILE).write_bytes(float_bytes)
            files[FLOAT_FILE] = ""
        for aux_name, data in (aux_files or {}).items():
            (tmp / aux_name).write_bytes(data)
            files[aux_name] = ""
        manifest: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "version": version,
            "task": task,
            "labels": list(labels),
            "thresholds": {k: written_threshold(float(v), alarms.get(k)) for k, v in thresholds.items()},
            "alarms": dict(alarms),
            **({"meanings": {k: dict(v) for k, v in meanings.items()}} if meanings else {}),
            "input": {
                "width": int(input_size[0]),
                "height": int(input_size[1]),
                "channels": 3,
                "dtype": input_dtype,
                "colour": "rgb",
                "resize": "area",
                "range": [0, 255],
            },
            "quantization": quantization,
            "model": MODEL_FILE,
            "reference_model": FLOAT_FILE if float_bytes is not None else None,
            "signature": "serving_default",
            "input_name": "pixels",
            "outputs": dict(outputs or {"scores": "scores", "features": "features"}),
            "files": files,
            "heatmap": head.to_dict() if head is not None else None,
            "parity": parity,
            "source_run": source_run,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "pi_inspect_version": __version__,
            **(extra or {}),
        }
        write_manifest(tmp, manifest)
        if golden is not None:
            record_golden(tmp, golden)
        verify_bundle(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return verify_bundle(out_dir)


def written_threshold(threshold: float, direction: str | None, places: int = 4) -> float:
    """A threshold written with ``places`` decimals, rounded away from the side that alarms: a
    score equal to the calibrated value (int8 scores come in steps of 1/256) must not alarm,
    and rounding 0.3984375 down to 0.3984 made an 'above' one alarm. More decimals (up to 8)
    where that rounding would take a threshold inside (0, 1) onto 0 or 1."""
    for digits in range(places, 9):
        scale = 10**digits
        if direction == "below":
            value = math.floor(threshold * scale + 1e-9) / scale
        else:
            value = math.ceil(threshold * scale - 1e-9) / scale
        if 0.0 < value < 1.0 or not 0.0 < threshold < 1.0:
            return value
    return value


def good_reference(
    labels: list[str], scores: np.ndarray, good: np.ndarray
) -> dict[str, Any] | None:
    """The manifest's ``reference``: per label, the histogram of its scores on the good images
    the converted model was checked on (the station compares its good frames against it)."""
    from pi_inspect.edge.drift import histogram

    if not good.any():
        return None
    kept = np.asarray(scores)[np.asarray(good, bool)]
    return {"good_scores": {label: histogram(kept[:, j]) for j, label in enumerate(labels)}}


def good_rows(y: np.ndarray, labels: list[str], alarms: dict[str, str | None]) -> np.ndarray:
    """Rows of a label matrix on which no alarm condition holds (present above, absent below)."""
    y = np.asarray(y) > 0.5
    bad = np.zeros(len(y), bool)
    for j, label in enumerate(labels):
        if alarms.get(label) == "above":
            bad |= y[:, j]
        elif alarms.get(label) == "below":
            bad |= ~y[:, j]
    return ~bad
