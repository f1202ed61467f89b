"""Real bundles for tests: the demo bundle's int8 model and golden set under a manifest a test
can change, written with correct hashes even when the manifest itself is broken on purpose."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bundle import default_bundle_dir

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
