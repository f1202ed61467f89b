"""The bundle manifest: its dataclasses and the strict parser that checks every value.

``pi_inspect.edge.bundle`` reads the file and verifies the bundle's files; this module only turns the
parsed JSON into a ``Manifest`` or a one-line ``BundleError``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pi_inspect.edge.data.meanings import LabelMeaning, declared_meanings
from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.manifest_anomaly import (  # noqa: F401 - part of the manifest API
    ANOMALY_LABEL,
    MAX_INPUT_SIDE,
    AnomalySpec,
    GlobalSpec,
    anomaly_rules,
)
from pi_inspect.edge.manifest_head import (  # noqa: F401 - part of the manifest API
    MAX_DIM,
    DenseLayer,
    HeadSpec,
    _is_int,
    _show,
    decode_array,
    encode_array,
)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({1})
MANIFEST = "manifest.json"

Task = Literal["multilabel", "multiclass", "anomaly"]
TASKS = ("multilabel", "multiclass", "anomaly")
Polarity = Literal["above", "below"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    anomaly: AnomalySpec | None = None  # task "anomaly": its calibration, where recorded
    reference: dict[str, list[int]] | None = None  # good images' score histograms (drift)
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
MAX_LABELS = 256
MAX_LABEL_BYTES = 64
MAX_FILES = 64
MAX_GOLDEN = 32
GOLDEN_TOLERANCE = 0.03  # int8 kernels differ between runtimes by a few output steps (1/256)
MAX_GOLDEN_TOLERANCE = 0.25
INPUT_DTYPES = ("uint8", "int8", "float32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LABEL_FORBIDDEN = frozenset("/#+\\\0")


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
    if task not in TASKS:
        raise BundleError(f"{where}: unknown task {_show(task)} (known: {', '.join(TASKS)})")
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
    anomaly = anomaly_rules(d, task, labels, raw_thresholds, alarms, outputs, files, where)
    good_scores = _reference(d.get("reference"), labels, where)
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
        anomaly=anomaly,
        reference=good_scores,
        raw=d,
    )


def _reference(table: Any, labels: tuple[str, ...], where: str) -> dict[str, list[int]] | None:
    """``{"good_scores": {label: [count per tenth of [0, 1]]}}``, as ``convert`` records it."""
    if table is None:
        return None
    good = table.get("good_scores") if isinstance(table, dict) and set(table) == {"good_scores"} else None
    if not isinstance(good, dict) or not set(good) <= set(labels) or not all(
        isinstance(v, list) and len(v) == 10 and all(_is_int(c) and c >= 0 for c in v) and sum(v) > 0
        for v in good.values()
    ):
        raise BundleError(f"{where}: reference must be {{\"good_scores\": {{label: [10 counts]}}}} for known labels")
    return {str(k): [int(c) for c in v] for k, v in good.items()}
