"""The wheel installs one top-level name, ``pi_inspect``: a user's own ``edge/``, ``train.py``
or ``convert.py`` shadows nothing. Built from this checkout, installed into a fresh venv outside
it, and run from a folder full of decoys."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECOY = 'raise ImportError("a decoy in the working directory was imported")\n'

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    (found,) = out.glob("pi_inspect-*.whl")
    return found


def test_the_wheels_only_top_level_name_is_pi_inspect(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert whl.read(top_level).decode().split() == ["pi_inspect"]
        entry_points = whl.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"pi_inspect"}
    for part in ("edge", "train", "convert"):
        assert f"pi_inspect/{part}/__init__.py" in names
    assert "pi_inspect/edge/assets/demo_bundle/manifest.json" in names
    assert "pi_inspect/edge/console/static/console.js" in names
    for page in ("templates/index.html", "static/label.js", "static/label.css"):
        assert f"pi_inspect/edge/label/{page}" in names
    for page in ("templates/fleet.html", "static/fleet.js", "static/fleet.css"):
        assert f"pi_inspect/edge/fleet/{page}" in names
    assert "pi-inspect = pi_inspect.edge.cli:main" in entry_points
    assert "mqtt = pi_inspect.edge.mqtt.plugin:PLUGIN" in entry_points
    assert "plc = pi_inspect.edge.plc.plugin:PLUGIN" in entry_points


def test_the_installed_demo_runs_beside_decoy_edge_train_and_convert(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the dependencies come from this interpreter's site-packages; pi-inspect from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "work"
    (work / "edge").mkdir(parents=True)
    (work / "edge" / "__init__.py").write_text(DECOY)
    (work / "train.py").write_text(DECOY)
    (work / "convert.py").write_text(DECOY)
    where = subprocess.run(
        [str(py), "-c", "import pi_inspect.edge, sys; print(pi_inspect.edge.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert where.returncode == 0 and where.stdout.startswith(str(venv)), where.stdout + where.stderr
    demo = subprocess.run(
        [str(venv / "bin" / "pi-inspect"), "demo", "--frames", "60"],
        capture_output=True, text=True, cwd=work, timeout=300,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "decoy" not in demo.stdout + demo.stderr
    assert "recall" in demo.stdout
    nothing = subprocess.run(
        [str(py), "-c", "import edge"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert nothing.returncode != 0 and "No module named 'edge'" in nothing.stderr
