"""The model bundle: a directory with ``manifest.json`` and the ``.tflite`` file(s) it names.

The manifest is the contract between the workstation (``convert`` writes it) and the Pi (the
daemon reads it). The loader refuses a bundle whose files do not match their sha256, whose
schema version it does not know, or whose input does not fit the expected size -- always with a
one-line reason, because an operator reads it in a journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest import (  # noqa: F401 - the bundle API, as before
    GOLDEN_TOLERANCE,
    INPUT_DTYPES,
    MANIFEST,
    MAX_DIM,
    MAX_FILES,
    MAX_GOLDEN,
    MAX_GOLDEN_TOLERANCE,
    MAX_INPUT_SIDE,
    MAX_LABEL_BYTES,
    MAX_LABELS,
    MAX_MANIFEST_BYTES,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMAS,
    DenseLayer,
    Golden,
    HeadSpec,
    Manifest,
    Polarity,
    Task,
    check_labels,
    decode_array,
    encode_array,
    label_problem,
    parse_manifest,
    sha256_file,
)


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Read and parse ``manifest.json`` without checking file hashes."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    where = f"bundle {bundle_dir}"
    try:
        if not bundle_dir.is_dir():
            raise BundleError(f"bundle {bundle_dir} does not exist or is not a directory")
        if path.is_symlink() or not path.is_file():
            raise BundleError(f"bundle {bundle_dir} has no {MANIFEST} (a regular file)")
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{where}: {MANIFEST} is larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        raw = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{where}: {MANIFEST} is unreadable ({exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).splitlines()[0]
        raise BundleError(f"{where}: {MANIFEST} is not valid JSON ({detail[:120]})") from None
    try:
        manifest = parse_manifest(data, where=where)
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:120]
        raise BundleError(f"{where}: malformed manifest ({type(exc).__name__}: {detail})") from None
    return dataclasses.replace(manifest, content_sha256=hashlib.sha256(raw).hexdigest())


def verify_bundle(
    bundle_dir: str | Path, expected_size: tuple[int, int] | None = None
) -> Manifest:
    """Read the manifest and check every listed file's sha256 (and the input size, if given).

    Every file must be a regular file inside the bundle directory: a symbolic link is refused
    even when it points at the right bytes, since what it points at can change under us.
    """
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for name, digest in manifest.files.items():
        path = bundle_dir / name
        if path.is_symlink():
            raise BundleError(
                f"bundle {bundle_dir}: {name} is a symbolic link; every file must lie inside the bundle"
            )
        if not path.is_file():
            raise BundleError(f"bundle {bundle_dir}: {name} is missing")
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise BundleError(f"bundle {bundle_dir}: {name} is unreadable ({exc.strerror or exc})") from None
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


def golden_inputs(bundle_dir: str | Path, manifest: Manifest) -> np.ndarray:
    """The golden set's inputs, uint8 (n, height, width, 3), checked against the manifest.

    Stored as ``inputs`` in a compressed ``.npz`` (no pickles); call after ``verify_bundle``.
    """
    golden = manifest.golden
    if golden is None:
        raise BundleError(f"bundle {bundle_dir} has no golden set")
    n = len(golden.scores)
    want = (n, manifest.input_height, manifest.input_width, 3)
    path = Path(bundle_dir) / golden.file
    where = f"bundle {bundle_dir}: golden set {golden.file}"
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.namelist() != ["inputs.npy"]:
                raise BundleError(f"{where} must hold exactly one array, 'inputs'")
            if zf.getinfo("inputs.npy").file_size > math.prod(want) + 4096:
                raise BundleError(f"{where}: 'inputs' is larger than {want} uint8 values")
        with np.load(path, allow_pickle=False) as npz:
            inputs = npz["inputs"]
    except BundleError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise BundleError(f"{where} is unreadable ({detail})") from None
    if inputs.dtype != np.uint8 or inputs.shape != want:
        raise BundleError(f"{where}: 'inputs' is {inputs.dtype} {inputs.shape}, the manifest needs uint8 {want}")
    return inputs


def golden_entry(file: str, scores: np.ndarray, tolerance: float = GOLDEN_TOLERANCE) -> dict[str, Any]:
    """The manifest's ``golden`` object for recorded ``scores`` (n, labels)."""
    rows = [[round(float(v), 6) for v in row] for row in np.asarray(scores, dtype=np.float64)]
    return {"file": file, "tolerance": tolerance, "scores": rows}


def write_golden(bundle_dir: str | Path, file: str, inputs: np.ndarray) -> Path:
    """Store golden inputs (uint8 RGB, n x h x w x 3) as ``file`` (a compressed .npz)."""
    path = Path(bundle_dir) / file
    with open(path, "wb") as f:
        np.savez_compressed(f, inputs=np.ascontiguousarray(inputs, dtype=np.uint8))
    return path


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


def anomaly_bundle_dir() -> Path:
    """The demo anomaly bundle shipped inside the package (trained on good seams only)."""
    return Path(__file__).resolve().parent / "assets" / "anomaly_bundle"


def identity(clf: Any) -> str:
    """A bundle's identity: its whole content (manifest sha256: thresholds included), or the
    model file's sha256 for a classifier without a manifest."""
    manifest = getattr(clf, "manifest", None)
    return getattr(manifest, "content_sha256", "") or clf.info.sha256
