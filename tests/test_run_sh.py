"""tests/run.sh says first what it installs system-wide and why, and carries on without apt."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RUN_SH = Path(__file__).resolve().parent / "run.sh"


def _bin_without_apt(tmp_path: Path) -> Path:
    """A PATH holding only what the script's first part needs: no dpkg, apt-get or sudo."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("bash", "id", "dirname"):
        os.symlink(shutil.which(tool), folder / tool)
    return folder


def test_run_sh_names_every_system_package_and_why_then_skips_without_apt(tmp_path):
    folder = _bin_without_apt(tmp_path)
    proc = subprocess.run(
        [str(folder / "bash"), str(RUN_SH)],
        env={"PATH": str(folder), "RUN_SH_ONLY": "system", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "== system-wide (apt): mosquitto mosquitto-clients systemd chromium"
    for pkg, why in (("mosquitto", "MQTT"), ("systemd", "unit"), ("chromium", "browser")):
        row = next(line for line in lines if line.split()[0] == pkg)
        assert "missing" in row and why in row, row
    assert any(line.startswith("== skipped: apt-get install mosquitto") for line in lines)
    assert "everything else runs" in proc.stdout


def test_run_sh_reports_installed_packages_without_installing_them_again():
    if shutil.which("dpkg") is None:
        pytest.skip("not a Debian family system: the first test covers the skip")
    installed = [
        pkg for pkg in ("mosquitto", "mosquitto-clients", "systemd", "chromium")
        if subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode == 0
    ]
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env={**os.environ, "RUN_SH_ONLY": "system"},
        capture_output=True, text=True, timeout=60,
    )
    for pkg in installed:
        row = next(line for line in proc.stdout.splitlines() if line.split()[0] == pkg)
        assert "installed" in row
    if len(installed) == 4:
        assert "apt-get install" not in proc.stdout
