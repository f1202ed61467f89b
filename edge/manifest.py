"""The bundle manifest: its dataclasses and the strict parser that checks every value.

``edge.bundle`` reads the file and verifies the bundle's files; this module only turns the
parsed JSON into a ``Manifest`` or a one-line ``BundleError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.data.meanings import LabelMeaning, declared_meanings
from edge.errors import BundleError
from edge.events import ModelInfo

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({1})
MANIFEST = "manifest.json"

Task = Literal["multilabel", "multiclass"]
Polarity = Literal["above", "below"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: shape plus base64 of its little-endian bytes."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32", "b64": base64.b64encode(a.tobytes()).decode()}


def decode_array(d: Any, what: str = "head weights") -> np.ndarray:
    if not isinstance(d, dict):
        raise BundleError(f"{what} are not an object with shape, dtype and b64")
    if d.get("dtype") != "float32":
        raise BundleError(f"{what} have dtype {_show(d.get('dtype'))}, expected float32")
    shape_in, b64 = d.get("shape"), d.get("b64")
    if not isinstance(b64, str) or not isinstance(shape_in, list) or not 1 <= len(shape_in) <= 4:
        raise BundleError(f"{what} need a 'shape' list of 1 to 4 sizes and a 'b64' string")
    if not all(_is_int(s) and 0 < s <= MAX_DIM for s in shape_in):
        raise BundleError(f"{what}: shape {_show(shape_in)} must hold whole numbers 1..{MAX_DIM}")
    shape = tuple(shape_in)
    want = math.prod(shape)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{what}: 'b64' is not base64") from None
    if len(raw) != 4 * want:
        raise BundleError(f"{what} hold {len(raw) // 4} values, shape {shape} needs {want}")
    arr = np.frombuffer(raw, dtype="<f4")
    if not np.isfinite(arr).all():
        raise BundleError(f"{what} hold NaN or infinite values")
    return arr.reshape(shape).astype(np.float32)


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer of the classifier head, kept in float for on-device Grad-CAM."""

    name: str
    kernel: np.ndarray  # (in, out)
    bias: np.ndarray  # (out,)
    activation: Literal["relu", "linear"]


@dataclass(frozen=True)
class HeadSpec:
    """What the edge needs for heat maps: GAP over the feature map, then these dense layers."""

    layers: tuple[DenseLayer, ...]
    output_activation: Literal["sigmoid", "softmax"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": "gap",
            "output_activation": self.output_activation,
            "layers": [
                {
                    "name": lyr.name,
                    "activation": lyr.activation,
                    "kernel": encode_array(lyr.kernel),
                    "bias": encode_array(lyr.bias),
                }
                for lyr in self.layers
            ],
        }

    @classmethod
    def from_dict(cls, d: Any) -> HeadSpec:
        if not isinstance(d, dict):
            raise BundleError("heat-map head is not an object")
        if d.get("pool") != "gap":
            raise BundleError(f"heat-map head pool {_show(d.get('pool'))} is not supported (only 'gap')")
        raw_layers = d.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise BundleError("heat-map head has no dense layer")
        layers = []
        for i, x in enumerate(raw_layers):
            if not isinstance(x, dict) or x.get("activation") not in ("relu", "linear"):
                raise BundleError(f"heat-map head layer {i} needs activation 'relu' or 'linear'")
            kernel = decode_array(x.get("kernel"), f"heat-map head layer {i} kernel")
            bias = decode_array(x.get("bias"), f"heat-map head layer {i} bias")
            if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
                raise BundleError(f"heat-map head layer {i}: kernel {kernel.shape} and bias {bias.shape} do not fit")
            if layers and layers[-1].kernel.shape[1] != kernel.shape[0]:
                raise BundleError(f"heat-map head layer {i} takes {kernel.shape[0]} inputs, the layer before gives {layers[-1].kernel.shape[1]}")
            layers.append(DenseLayer(str(x.get("name", f"dense_{i}")), kernel, bias, x["activation"]))
        if d.get("output_activation") not in ("sigmoid", "softmax"):
            raise BundleError("heat-map head output_activation must be 'sigmoid' or 'softmax'")
        return cls(layers=tuple(layers), output_activation=d["output_activation"])


@dataclass(frozen=True)
class Golden:
    """The golden set: inputs (in ``file``) whose scores ``convert`` recorded, and how close the
    target's runtime must come to them (largest absolute score difference)."""

    file: str
    scores: np.ndarray  # float32 (n, labels)
    tolerance: float


@dataclass(frozen=True)
class Manifest:
    """Everything the Pi needs to know about a model, parsed and checked."""

    name: str
    version: str
    task: Task
    labels: tuple[str, ...]
    thresholds: dict[str, float]
    alarms: dict[str, Polarity]
    input_width: int
    input_height: int
    input_dtype: str  # "uint8" | "int8" | "float32"
    colour: str
    quantization: str  # "int8" | "float16" | "float32"
    model_file: str
    files: dict[str, str]  # file name -> sha256
    signature: str = "serving_default"
    input_name: str = "pixels"
    outputs: dict[str, str] = field(default_factory=lambda: {"scores": "scores"})
    head: HeadSpec | None = None
    reference_model: str | None = None
    golden: Golden | None = field(default=None, compare=False)
    content_sha256: str = ""  # sha256 of manifest.json, which names every file's sha256
    meanings: dict[str, LabelMeaning] = field(default_factory=dict)  # as the data declared
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def input_size(self) -> tuple[int, int]:
        return (self.input_width, self.input_height)

    @property
    def sha256(self) -> str:
        return self.files[self.model_file]

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, version=self.version, sha256=self.sha256)


# --- checks a manifest's values must pass -----------------------------------------------------

MAX_MANIFEST_BYTES = 64 << 20
MAX_DIM = 1 << 16  # any one dimension of head weights
MAX_INPUT_SIDE = 4096
MAX_LABELS = 256
MAX_LABEL_BYTES = 64
MAX_FILES = 64
MAX_GOLDEN = 32
GOLDEN_TOLERANCE = 0.03  # int8 kernels differ between runtimes by a few output steps (1/256)
MAX_GOLDEN_TOLERANCE = 0.25
INPUT_DTYPES = ("uint8", "int8", "float32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LABEL_FORBIDDEN = frozenset("/#+\\\0")


def _show(value: object, width: int = 60) -> str:
    """``repr`` of a value from the manifest, cut short: a reason stays one readable line."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _printable(s: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F for c in s)


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot be a label, or None: a label is an MQTT topic level
    (``.../event/<label>``) and part of file names (snapshots, label folders)."""
    if not isinstance(label, str):
        return f"is a {type(label).__name__}, not a string"
    if not label:
        return "is empty"
    try:
        size = len(label.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size > MAX_LABEL_BYTES:
        return f"is longer than {MAX_LABEL_BYTES} bytes"
    if label in (".", ".."):
        return "is a directory name"
    if label.startswith("$"):
        return "starts with '$' (MQTT reserves such topics)"
    if label != label.strip():
        return "starts or ends with white space"
    bad = sorted({c for c in label if c in _LABEL_FORBIDDEN or not _printable(c)})
    if bad:
        return "contains " + ", ".join(repr(c) for c in bad)
    return None


def check_labels(labels: object, where: str) -> tuple[str, ...]:
    """Labels as a tuple, or ``BundleError`` naming the first unusable one."""
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
        raise BundleError(f"{where}: labels must be a list of 1 to {MAX_LABELS} names")
    for label in labels:
        problem = label_problem(label)
        if problem is not None:
            raise BundleError(
                f"{where}: label {_show(label)} {problem}; a label must be usable as an MQTT topic "
                f"level and a file name (no '/', '#', '+', '\\', NUL, leading '$')"
            )
    if len(set(labels)) != len(labels):
        raise BundleError(f"{where}: labels must be unique")
    return tuple(labels)


def _plain_file(name: object, where: str) -> str:
    """A file name inside the bundle directory: no path, no parent, nothing odd."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or not _printable(name)
        or len(name) > 200
    ):
        raise BundleError(f"{where}: file name {_show(name)} must be a plain file name inside the bundle")
    return name


def _require(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise BundleError(f"{where}: manifest has no '{key}'")
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise BundleError(f"{where}: manifest '{key}' has the wrong type ({type(value).__name__})")
    return value


def _text(d: dict[str, Any], key: str, default: str, where: str) -> str:
    value = d.get(key, default)
    if not isinstance(value, str) or not value or len(value) > 200 or not _printable(value):
        raise BundleError(f"{where}: manifest '{key}' must be a non-empty one-line string")
    return value


def _side(inp: dict[str, Any], key: str, where: str) -> int:
    value = inp.get(key)
    if not _is_int(value) or not 1 <= value <= MAX_INPUT_SIDE:
        raise BundleError(f"{where}: input '{key}' must be a whole number 1..{MAX_INPUT_SIDE}, not {_show(value)}")
    return value


def _golden(d: Any, files: dict[str, str], n_labels: int, where: str) -> Golden:
    if not isinstance(d, dict):
        raise BundleError(f"{where}: golden set is not an object")
    file = _plain_file(d.get("file"), f"{where}: golden set")
    if file not in files:
        raise BundleError(f"{where}: golden set file {_show(file)} has no sha256 in 'files'")
    rows = d.get("scores")
    if (
        not isinstance(rows, list)
        or not 1 <= len(rows) <= MAX_GOLDEN
        or not all(isinstance(r, list) and len(r) == n_labels for r in rows)
        or not all(_is_number(v) and 0.0 <= v <= 1.0 for r in rows for v in r)
    ):
        raise BundleError(
            f"{where}: golden set scores must be 1..{MAX_GOLDEN} rows of {n_labels} numbers in [0, 1]"
        )
    tol = d.get("tolerance", GOLDEN_TOLERANCE)
    if not _is_number(tol) or not 0.0 < tol <= MAX_GOLDEN_TOLERANCE:
        raise BundleError(f"{where}: golden set tolerance must be a number in (0, {MAX_GOLDEN_TOLERANCE}]")
    return Golden(file=file, scores=np.asarray(rows, dtype=np.float32), tolerance=float(tol))


def parse_manifest(d: Any, where: str = "bundle") -> Manifest:
    """Check the manifest's shape and values and build a ``Manifest``; one-line ``BundleError``
    otherwise. Every value is checked for type and range: a bundle is input from outside."""
    if not isinstance(d, dict):
        raise BundleError(f"{where}: {MANIFEST} is not a JSON object")
    version = d.get("schema_version")
    if not _is_int(version) or version not in SUPPORTED_SCHEMAS:
        raise BundleError(
            f"{where}: unknown manifest schema_version {_show(version)} "
            f"(this pi-inspect reads {sorted(SUPPORTED_SCHEMAS)}); upgrade pi-inspect or re-convert"
        )
    labels = check_labels(_require(d, "labels", list, where), where)
    task = _require(d, "task", str, where)
    if task not in ("multilabel", "multiclass"):
        raise BundleError(f"{where}: unknown task {_show(task)}")
    inp = _require(d, "input", dict, where)
    width, height = _side(inp, "width", where), _side(inp, "height", where)
    dtype = inp.get("dtype", "uint8")
    if dtype not in INPUT_DTYPES:
        raise BundleError(f"{where}: input dtype {_show(dtype)} is not one of {', '.join(INPUT_DTYPES)}")
    raw_files = _require(d, "files", dict, where)
    if len(raw_files) > MAX_FILES:
        raise BundleError(f"{where}: manifest lists more than {MAX_FILES} files")
    files: dict[str, str] = {}
    for name, digest in raw_files.items():
        _plain_file(name, where)
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise BundleError(f"{where}: sha256 of {_show(name)} is not 64 lowercase hex digits")
        files[name] = digest
    model_file = _plain_file(_require(d, "model", str, where), where)
    if model_file not in files:
        raise BundleError(f"{where}: model file {_show(model_file)} has no sha256 in 'files'")
    reference = d.get("reference_model")
    if reference is not None:
        _plain_file(reference, f"{where}: reference_model")
        if reference not in files:
            raise BundleError(f"{where}: reference_model {_show(reference)} has no sha256 in 'files'")
    raw_thresholds = d.get("thresholds", {})
    raw_alarms = d.get("alarms", {})
    if not isinstance(raw_thresholds, dict) or not isinstance(raw_alarms, dict):
        raise BundleError(f"{where}: thresholds and alarms must be objects keyed by label")
    for label in [*raw_thresholds, *raw_alarms]:
        if label not in labels:
            raise BundleError(f"{where}: threshold/alarm for unknown label {_show(label)}")
    for label, value in raw_thresholds.items():
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise BundleError(f"{where}: threshold of {_show(label)} is {_show(value)}; it must be a number in [0, 1]")
    if any(v not in ("above", "below") for v in raw_alarms.values()):
        raise BundleError(f"{where}: alarms must be 'above' or 'below'")
    meanings, alarms = declared_meanings(d.get("meanings"), labels, raw_alarms, where, BundleError)
    outputs = d.get("outputs", {"scores": "scores"})
    if (
        not isinstance(outputs, dict)
        or not all(
            isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 200 and _printable(v)
            for k, v in outputs.items()
        )
        or "scores" not in outputs
    ):
        raise BundleError(f"{where}: outputs must map 'scores' (and 'features') to tensor names")
    head = HeadSpec.from_dict(d["heatmap"]) if d.get("heatmap") is not None else None
    if head is not None and head.layers[-1].kernel.shape[1] != len(labels):
        raise BundleError(
            f"{where}: heat-map head gives {head.layers[-1].kernel.shape[1]} scores for {len(labels)} labels"
        )
    golden = _golden(d["golden"], files, len(labels), where) if d.get("golden") is not None else None
    return Manifest(
        name=_text(d, "name", "model", where),
        version=_text(d, "version", "0", where),
        task=task,
        labels=labels,
        thresholds={lbl: float(raw_thresholds.get(lbl, 0.5)) for lbl in labels},
        alarms=alarms,
        input_width=width,
        input_height=height,
        input_dtype=dtype,
        colour=_text(inp, "colour", "rgb", where),
        quantization=_text(d, "quantization", "int8", where),
        model_file=model_file,
        files=files,
        signature=_text(d, "signature", "serving_default", where),
        input_name=_text(d, "input_name", "pixels", where),
        outputs=dict(outputs),
        head=head,
        reference_model=reference,
        golden=golden, meanings=meanings,
        raw=d,
    )
