"""The daemon as the shipped unit runs it: ``/`` read-only (``ProtectSystem=strict``), only the
state directory writable, and the working directory and ``LG_WD`` the unit sets.

The namespace is real: ``unshare --mount`` (root only), every mount remounted read-only except a
bind mount of the state directory and the kernel's pseudo file systems. With lgpio installed the
daemon asks for the lgpio pin factory, whose import creates FIFOs in the working directory: it must
work from the unit's working directory and fail (as it did on a real Pi) from ``/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_systemd_unit import UNIT, unit_settings

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="mount namespaces with read-only remounts need root on Linux",
    ),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) missing"),
]

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _mount_namespaces_work():
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "-o", "remount,bind,ro", "/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.strip()[:200]}")
HAS_LGPIO = importlib.util.find_spec("lgpio") is not None

# Runs as root inside the new mount namespace: $STATE stays writable, everything else is remounted
# read-only, then the daemon starts in $WORKDIR. The probes print what the daemon will face.
NAMESPACE = r"""
set -e
mount --make-rprivate /
mount --bind "$STATE" "$STATE"
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
    case "$m" in
        "$STATE"|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;;
    esac
    mount -o remount,bind,ro "$m" 2>/dev/null || true
done
touch /.pi-inspect-probe 2>/dev/null && echo "PROBE root writable" >&2 || echo "PROBE root read-only" >&2
touch "$WORKDIR/.pi-inspect-probe" 2>/dev/null && rm "$WORKDIR/.pi-inspect-probe" \
    && echo "PROBE workdir writable" >&2 || echo "PROBE workdir read-only" >&2
touch "$STATE/.probe" && rm "$STATE/.probe" && echo "PROBE state writable" >&2
cd "$WORKDIR"
exec "$@"
"""


def _images(folder: Path, count: int = 6) -> None:
    import cv2

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame{i:02d}.png"), image)


def _run_in_readonly_root(tmp_path: Path, workdir: str | None, lg_wd: bool):
    state = (tmp_path / "state").resolve()
    state.mkdir(exist_ok=True)
    images = tmp_path / "images"
    if not images.exists():
        _images(images)
    factory = "lgpio" if HAS_LGPIO else "mock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'state_dir = "{state}"\n'
        f'[source]\nkind = "folder"\nuri = "{images}"\n'
        f'[gpio]\npin_factory = "{factory}"\n'
        "[stdout]\nresults = true\n"
    )
    env = {
        **os.environ,
        "STATE": str(state),
        "WORKDIR": workdir or str(state),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("LG_WD", None)
    if lg_wd:
        env["LG_WD"] = str(state)
    cmd = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        NAMESPACE,
        "sh",
        sys.executable,
        "-m",
        "pi_inspect.edge.cli",
        "run",
        "--config",
        str(config),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    return proc, state


def _lines(stdout: str, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if r.get("type") == kind]


def test_daemon_runs_with_a_read_only_root_from_the_units_working_directory(tmp_path):
    settings = unit_settings(UNIT.read_text())
    assert settings["WorkingDirectory"] == ["/var/lib/pi-inspect"]  # mapped to the test's state
    proc, state = _run_in_readonly_root(tmp_path, workdir=None, lg_wd=True)
    assert "PROBE root read-only" in proc.stderr, proc.stderr
    assert "PROBE state writable" in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(_lines(proc.stdout, "result")) == 6, proc.stdout[-2000:]
    if HAS_LGPIO:
        fifos = [p for p in state.iterdir() if p.name.startswith(".lgd-nfy")]
        assert fifos and all(stat.S_ISFIFO(p.lstat().st_mode) for p in fifos), list(state.iterdir())
        assert ".lgd-nfy" not in proc.stderr, proc.stderr[-3000:]
        # Not a Pi: the factory itself then refuses, which is a fault state, not an exit.
        faults = [s["fault"] for s in _lines(proc.stdout, "state") if s.get("fault")]
        assert any(f.startswith("no GPIO") for f in faults), proc.stdout[-2000:]


@pytest.mark.skipif(not HAS_LGPIO, reason="lgpio not installed (pip install lgpio: x86_64 wheels)")
def test_lgpio_import_fails_from_a_read_only_working_directory_and_the_daemon_goes_on(tmp_path):
    """What happened on a real Pi with the working directory left at ``/``: lgpio cannot create
    its FIFO. The daemon must report no GPIO and keep inspecting rather than exit."""
    proc, state = _run_in_readonly_root(tmp_path, workdir="/", lg_wd=False)
    assert "PROBE workdir read-only" in proc.stderr, proc.stderr
    assert ".lgd-nfy" in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(_lines(proc.stdout, "result")) == 6
    assert not any(p.name.startswith(".lgd-nfy") for p in state.iterdir())
