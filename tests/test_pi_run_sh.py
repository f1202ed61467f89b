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
