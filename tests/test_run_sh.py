"""tests/run.sh says first what it installs system-wide and why, and carries on without apt;
it plans the Raspberry Pi check by default and says loudly when this host cannot run it."""

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
        env={"PATH": str(folder), "RUN_SH_ONLY": "system", "HOME": str(tmp_path),
             "PI_INSPECT_PI": "skip"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("== Pi check SKIPPED: PI_INSPECT_PI=skip")  # said first
    assert lines[1] == "== system-wide (apt): mosquitto mosquitto-clients systemd chromium"
    for pkg, why in (("mosquitto", "MQTT"), ("systemd", "unit"), ("chromium", "browser")):
        row = next(line for line in lines if line.split()[0] == pkg)
        assert "missing" in row and why in row, row
    assert any(line.startswith("== skipped: apt-get install mosquitto") for line in lines)
    assert "everything else runs" in proc.stdout
    assert lines[-1] == (
        "== Pi check SKIPPED: PI_INSPECT_PI=skip: "
        "the Raspberry Pi's software stack is NOT tested by this run"
    )


def test_run_sh_reports_installed_packages_without_installing_them_again():
    if shutil.which("dpkg") is None:
        pytest.skip("not a Debian family system: the first test covers the skip")
    installed = [
        pkg for pkg in ("mosquitto", "mosquitto-clients", "systemd", "chromium")
        if subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode == 0
    ]
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env={**os.environ, "RUN_SH_ONLY": "system", "PI_INSPECT_PI": "skip"},
        capture_output=True, text=True, timeout=60,
    )
    for pkg in installed:
        row = next(line for line in proc.stdout.splitlines() if line.split()[0] == pkg)
        assert "installed" in row
    if len(installed) == 4:
        assert "apt-get install" not in proc.stdout


def test_run_sh_as_root_plans_the_pi_check_when_asked_and_names_its_packages(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the Pi check runs only as root")
    folder = _bin_without_apt(tmp_path)
    proc = subprocess.run(
        [str(folder / "bash"), str(RUN_SH)],
        env={"PATH": str(folder), "RUN_SH_ONLY": "system", "HOME": str(tmp_path),
             "PI_INSPECT_PI": "run"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("chromium mmdebstrap qemu-user-static binfmt-support")
    assert lines[-1] == (
        "== Pi check (arm64 Raspberry Pi OS under qemu) runs after pytest: PI_INSPECT_PI=run"
    )


def test_run_sh_without_cached_roots_says_so_first_and_installs_nothing_for_the_check(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the default runs the Pi check only as root")
    folder = _bin_without_apt(tmp_path)
    for tool in ("python3", "sha256sum", "cut", "cat", "grep", "printf"):
        if shutil.which(tool) and not (folder / tool).exists():
            os.symlink(shutil.which(tool), folder / tool)
    empty = tmp_path / "no-roots"
    empty.mkdir()
    proc = subprocess.run(
        [str(folder / "bash"), str(RUN_SH)],
        env={"PATH": str(folder), "RUN_SH_ONLY": "system", "HOME": str(tmp_path),
             "PI_INSPECT_PI_CACHE": str(empty)},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("== Pi check SKIPPED: the arm64 roots for this dependency set")
    assert lines[1] == "== system-wide (apt): mosquitto mosquitto-clients systemd chromium"
    assert not any(tool in proc.stdout for tool in ("mmdebstrap", "qemu-user-static", "binfmt"))


def test_run_sh_without_root_skips_the_pi_check_in_one_loud_line(tmp_path):
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing to drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = subprocess.run(
        [*prefix, "bash", str(RUN_SH)],
        env={"PATH": "/usr/bin:/bin", "RUN_SH_ONLY": "system", "HOME": "/"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("== Pi check SKIPPED: not root")  # said first
    assert "mmdebstrap" not in lines[1]
    assert lines[-1] == (
        "== Pi check SKIPPED: not root (mmdebstrap, chroot and mounts need root): "
        "the Raspberry Pi's software stack is NOT tested by this run"
    )


def test_run_sh_refuses_an_unknown_pi_check_mode():
    proc = subprocess.run(
        ["bash", str(RUN_SH)], env={**os.environ, "RUN_SH_ONLY": "system", "PI_INSPECT_PI": "yes"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "tests/run.sh: error: PI_INSPECT_PI must be auto, run or skip, not 'yes'"
    )
    assert proc.stdout == ""
