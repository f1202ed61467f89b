"""The Pi has no TensorFlow: importing `edge` and running its commands must never try to import it.

Each check runs in a child interpreter whose `sitecustomize` refuses tensorflow/keras and
records every attempt in a file, so an attempt that some code catches and survives is still seen.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pi_inspect.edge as edge
from pi_inspect.edge.bundle import default_bundle_dir

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = """
import os, sys
class _RefuseTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            with open(os.environ['PI_INSPECT_TF_LOG'], 'a') as fh:
                fh.write(name + '\\n')
            raise ModuleNotFoundError(f"No module named '{name}' (blocked by the test)", name=name)
sys.meta_path.insert(0, _RefuseTensorFlow())
"""


@pytest.fixture
def guarded(tmp_path):
    """Run a command with TensorFlow blocked; returns (CompletedProcess, attempted imports)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "tf-attempts.log"

    def run(args: list[str], timeout: float = 180) -> tuple[subprocess.CompletedProcess, list[str]]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
            "PI_INSPECT_TF_LOG": str(log),
        }
        proc = subprocess.run(
            args, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path
        )
        attempts = log.read_text().split() if log.exists() else []
        return proc, attempts

    return run


def edge_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(edge.__path__, prefix="pi_inspect.edge."))


def test_every_edge_module_imports_without_tensorflow(guarded):
    modules = edge_modules()
    assert {"pi_inspect.edge.runtime", "pi_inspect.edge.daemon", "pi_inspect.edge.mqtt.output"} <= set(
        modules
    )
    code = (
        "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    )
    proc, attempts = guarded([sys.executable, "-c", code, *modules])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert attempts == []


def test_edge_commands_run_without_tensorflow(guarded, tmp_path):
    cli = [sys.executable, "-m", "pi_inspect.edge.cli"]
    proc, attempts = guarded(
        [
            *cli,
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--count",
            "6",
            "--seed",
            "1",
            "--video",
            str(tmp_path / "v.mp4"),
            "--frames",
            "30",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, more = guarded(
        [*cli, "frames", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "f"), "--every", "10"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, more2 = guarded([*cli, "split", str(tmp_path / "s"), "--out", str(tmp_path / "split")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert attempts + more + more2 == []


@pytest.mark.skipif(
    not (default_bundle_dir() / "manifest.json").exists(), reason="no demo bundle checked in"
)
def test_demo_and_bench_run_without_tensorflow(guarded):
    cli = [sys.executable, "-m", "pi_inspect.edge.cli"]
    proc, attempts = guarded([*cli, "demo", "--frames", "90"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, more = guarded([*cli, "bench", "--runs", "20"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert attempts + more == []
