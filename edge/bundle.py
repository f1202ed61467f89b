"""The model bundle: a directory with ``manifest.json`` and the ``.tflite`` file(s) it names.

The manifest is the contract between the workstation (``convert`` writes it) and the Pi (the
daemon reads it). The loader refuses a bundle whose files do not match their sha256, whose
schema version it does not know, or whose input does not fit the expected size -- always with a
one-line reason, because an operator reads it in a journal.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.data.meanings import LabelMeaning, directions, from_alarms, parse_meanings
from edge.errors import BundleError, DataError
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


def decode_array(d: dict[str, Any]) -> np.ndarray:
    if d.get("dtype") != "float32":
        raise BundleError(f"head weights have dtype {d.get('dtype')!r}, expected float32")
    raw = base64.b64decode(d["b64"])
    shape = tuple(int(s) for s in d["shape"])
    arr = np.frombuffer(raw, dtype="<f4")
    if arr.size != int(np.prod(shape)):
        raise BundleError(f"head weights hold {arr.size} values, shape {shape} needs {int(np.prod(shape))}")
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
    def from_dict(cls, d: dict[str, Any]) -> HeadSpec:
        if d.get("pool") != "gap":
            raise BundleError(f"heat-map head pool {d.get('pool')!r} is not supported (only 'gap')")
        layers = tuple(
            DenseLayer(
                name=str(x["name"]),
                kernel=decode_array(x["kernel"]),
                bias=decode_array(x["bias"]),
                activation=x["activation"],
            )
            for x in d["layers"]
        )
        if not layers:
            raise BundleError("heat-map head has no dense layer")
        return cls(layers=layers, output_activation=d["output_activation"])


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
    # per label: when it alarms and what it means (the data set's declaration; from ``alarms``
    # for a bundle without one)
    meanings: dict[str, LabelMeaning] = field(default_factory=dict)
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


def _require(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise BundleError(f"{where}: manifest has no '{key}'")
    value = d[key]
    if not isinstance(value, kind):
        raise BundleError(f"{where}: manifest '{key}' has the wrong type ({type(value).__name__})")
    return value


def parse_manifest(d: dict[str, Any], where: str = "bundle") -> Manifest:
    """Check the manifest's shape and build a ``Manifest``; one-line ``BundleError`` otherwise."""
    version = d.get("schema_version")
    if version not in SUPPORTED_SCHEMAS:
        raise BundleError(
            f"{where}: unknown manifest schema_version {version!r} "
            f"(this pi-inspect reads {sorted(SUPPORTED_SCHEMAS)}); upgrade pi-inspect or re-convert"
        )
    labels = tuple(str(x) for x in _require(d, "labels", list, where))
    if not labels or len(set(labels)) != len(labels):
        raise BundleError(f"{where}: labels must be a non-empty list of unique names")
    task = _require(d, "task", str, where)
    if task not in ("multilabel", "multiclass"):
        raise BundleError(f"{where}: unknown task {task!r}")
    inp = _require(d, "input", dict, where)
    files = {str(k): str(v) for k, v in _require(d, "files", dict, where).items()}
    model_file = _require(d, "model", str, where)
    if model_file not in files:
        raise BundleError(f"{where}: model file {model_file!r} has no sha256 in 'files'")
    thresholds = {str(k): float(v) for k, v in d.get("thresholds", {}).items()}
    alarms = {str(k): v for k, v in d.get("alarms", {}).items()}
    for label in [*thresholds, *alarms]:
        if label not in labels:
            raise BundleError(f"{where}: threshold/alarm for unknown label {label!r}")
    if any(v not in ("above", "below") for v in alarms.values()):
        raise BundleError(f"{where}: alarms must be 'above' or 'below'")
    if d.get("meanings"):
        try:
            meanings = parse_meanings(d["meanings"], labels, f"{where}: manifest meanings")
        except DataError as exc:
            raise BundleError(str(exc)) from None
        alarms = directions(meanings)  # the declaration decides; ``alarms`` is its summary
    else:
        meanings = from_alarms(labels, alarms)
    head = HeadSpec.from_dict(d["heatmap"]) if d.get("heatmap") else None
    return Manifest(
        name=str(d.get("name", "model")),
        version=str(d.get("version", "0")),
        task=task,
        labels=labels,
        thresholds={lbl: thresholds.get(lbl, 0.5) for lbl in labels},
        alarms=alarms,
        input_width=int(inp["width"]),
        input_height=int(inp["height"]),
        input_dtype=str(inp.get("dtype", "uint8")),
        colour=str(inp.get("colour", "rgb")),
        quantization=str(d.get("quantization", "int8")),
        model_file=model_file,
        files=files,
        signature=str(d.get("signature", "serving_default")),
        input_name=str(d.get("input_name", "pixels")),
        outputs={str(k): str(v) for k, v in d.get("outputs", {"scores": "scores"}).items()},
        head=head,
        meanings=meanings,
        raw=d,
    )


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Read and parse ``manifest.json`` without checking file hashes."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.exists():
        raise BundleError(f"bundle {bundle_dir} does not exist")
    if not path.is_file():
        raise BundleError(f"bundle {bundle_dir} has no {MANIFEST}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"bundle {bundle_dir}: {MANIFEST} is not a JSON object")
    try:
        return parse_manifest(data, where=f"bundle {bundle_dir}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"bundle {bundle_dir}: malformed manifest ({exc})") from None


def verify_bundle(
    bundle_dir: str | Path, expected_size: tuple[int, int] | None = None
) -> Manifest:
    """Read the manifest and check every listed file's sha256 (and the input size, if given)."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for name, digest in manifest.files.items():
        if Path(name).name != name:
            raise BundleError(f"bundle {bundle_dir}: file name {name!r} must not contain a path")
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"bundle {bundle_dir}: {name} is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(
                f"bundle {bundle_dir}: {name} sha256 {actual[:12]}… does not match the manifest "
                f"({digest[:12]}…): the file was changed or the copy is corrupt"
            )
    if expected_size is not None and tuple(expected_size) != manifest.input_size:
        w, h = manifest.input_size
        raise BundleError(
            f"bundle {bundle_dir}: model input is {w}x{h}, this device is configured for "
            f"{expected_size[0]}x{expected_size[1]}"
        )
    return manifest


def write_manifest(bundle_dir: str | Path, data: dict[str, Any]) -> Path:
    """Write ``manifest.json``, filling ``files`` with the sha256 of each listed file."""
    bundle_dir = Path(bundle_dir)
    data = dict(data)
    data.setdefault("schema_version", SCHEMA_VERSION)
    data["files"] = {name: sha256_file(bundle_dir / name) for name in data.get("files", {})}
    parse_manifest(data, where=f"bundle {bundle_dir}")  # never write what we cannot read
    path = bundle_dir / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def default_bundle_dir() -> Path:
    """The demo bundle shipped inside the package."""
    return Path(__file__).resolve().parent / "assets" / "demo_bundle"
