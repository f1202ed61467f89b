"""tests/pi/run.sh refuses bad arguments and a host that cannot run the Pi check in one line
each, before building or mounting anything (no qemu needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "pi" / "run.sh"


def pi_run(*args: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = []
    if as_nobody and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing to drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*prefix, "bash", str(RUN), *args],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("buster", "cortex-a72"), "RELEASE must be bookworm or trixie (see --help)"),
        (("bookworm", "cortex-a53"), "CPU must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5)"),
        (("trixie", "cortex-a76", "--break", "numpy2"), "--break numpy2 is a Bookworm problem"),
        (("bookworm", "cortex-a72", "--break", "disk"), "--break takes numpy2, cpuinfo or cpu-max"),
        (("bookworm", "cortex-a72", "--break"), "--break needs numpy2, cpuinfo or cpu-max"),
        (("bookworm", "cortex-a72", "--fast"), "unknown option --fast (see --help)"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_with_status_2(args, message):
    proc = pi_run(*args)
    assert proc.returncode == 2
    assert proc.stderr == f"pi check: error: {message}\n"
    assert proc.stdout == ""


def test_a_host_without_root_cannot_run_it_and_says_why_with_status_3():
    for args in (("--host-check",), ("bookworm", "cortex-a72")):
        proc = pi_run(*args, as_nobody=True)
        assert proc.returncode == 3
        assert proc.stderr == (
            "pi check: this host cannot run it: not root (mmdebstrap, chroot and mounts need root)\n"
        )


def test_help_names_every_deliberate_breakage():
    proc = pi_run("--help")
    assert proc.returncode == 0
    for word in ("numpy2", "cpuinfo", "cpu-max", "--host-check", "--build-only"):
        assert word in proc.stdout


FAKE_RUN = """#!/bin/bash
# Stands in for tests/pi/run.sh: the outcome of each call comes from FAKE_OUTCOME.
args="$*"
case "$args" in *--build-only*) exit 0 ;; esac
case "$args" in
    *"--break numpy2"*) echo "FAIL $FAKE_NUMPY2_STEP: why"; echo "FAILED step: $FAKE_NUMPY2_STEP (stopped)"; exit 1 ;;
    *"--break cpuinfo"*) echo "FAILED step: cpu-files (stopped at the first failure)"; exit 1 ;;
esac
echo "| $1 | $2 | row |" >> "$PI_INSPECT_PI_ROWS"
echo "checked $1 $2"
exit "${FAKE_CHECK_STATUS:-0}"
"""


def run_matrix(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "tests" / "pi"
    folder.mkdir(parents=True)
    shutil.copy(RUN.with_name("matrix.sh"), folder / "matrix.sh")
    (folder / "run.sh").write_text(FAKE_RUN)
    return subprocess.run(
        ["bash", str(folder / "matrix.sh")],
        env={"PATH": "/usr/bin:/bin", "HOME": "/", "FAKE_NUMPY2_STEP": "stack", **env},
        capture_output=True, text=True, timeout=60,
    )


def test_matrix_passes_when_every_check_passes_and_every_breakage_fails_at_its_step(tmp_path):
    proc = run_matrix(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "checked bookworm cortex-a72" in out and "checked trixie cortex-a76" in out
    assert "the broken install (numpy2) failed at step 'stack'" in out
    assert "the broken install (cpuinfo) failed at step 'cpu-files'" in out
    assert "| bookworm | cortex-a72 | row |" in out and "| trixie | cortex-a76 | row |" in out
    assert out.splitlines()[-1] == "pi check: all passed (bookworm:cortex-a72 trixie:cortex-a76)"


def test_matrix_fails_when_a_breakage_fails_at_another_step_than_its_own(tmp_path):
    proc = run_matrix(tmp_path, FAKE_NUMPY2_STEP="install")
    assert proc.returncode == 1
    assert "the broken install (numpy2) failed, but not at step 'stack'" in proc.stderr
    assert proc.stderr.splitlines()[-1] == "pi check: FAILED: break-numpy2"


def test_matrix_fails_when_a_check_fails(tmp_path):
    proc = run_matrix(tmp_path, FAKE_CHECK_STATUS="1", PI_INSPECT_PI_BREAK="none")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "pi check: FAILED: bookworm:cortex-a72 trixie:cortex-a76"
    )


def test_roots_count_as_cached_only_when_each_releases_installed_layer_exists(tmp_path):
    """tests/run.sh leaves the Pi check out of an auto run on a machine without the roots
    (building them takes over an hour); this is the test it asks."""
    root = Path(__file__).resolve().parents[1]
    script = (
        f'source "{root}/tests/pi/roots.sh"; pi_roots_cached "{root}" bookworm trixie && '
        'echo cached || echo cold; for r in bookworm trixie; do '
        f'mkdir -p "$PI_CACHE/installed-$r-$(pi_installed_key $r "{root}")"; '
        'pi_roots_cached "' + str(root) + '" bookworm trixie && echo cached || echo cold; done'
    )
    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PI_INSPECT_PI_CACHE": str(tmp_path)},
    )
    assert out.stdout.split() == ["cold", "cold", "cached"], out.stderr
