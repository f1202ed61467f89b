"""systemd/install.sh: dry-runs print every step and execute nothing; a real run is idempotent.

System tools (apt-get, useradd, systemctl, ...) are stubs on PATH that append their argv to a
log, so a dry-run that leaked a command, or a re-run that repeated one, shows up in the log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "systemd" / "install.sh"
RECORDED = ["apt-get", "groupadd", "useradd", "usermod", "userdel", "systemctl", "chown", "env"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


class Sandbox:
    """A PATH of recording stubs and a fake user database for install.sh."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "stubs"
        self.bin.mkdir()
        self.log = tmp / "calls.log"
        self.log.touch()
        self.users = tmp / "users"  # one user or group name per line: what getent finds
        self.users.write_text("video\n")
        for name in RECORDED:
            self._stub(name, f'echo "{name} $*" >> {self.log}')
        # useradd/groupadd make the name known to getent, like the real ones.
        self._stub("useradd", f'echo "useradd $*" >> {self.log}; echo "${{@: -1}}" >> {self.users}')
        self._stub(
            "groupadd", f'echo "groupadd $*" >> {self.log}; echo "${{@: -1}}" >> {self.users}'
        )
        self._stub("getent", f'grep -qx "$2" {self.users}')
        # python3 -m venv DIR creates DIR/bin/python and a recording DIR/bin/pip.
        self._stub(
            "python3",
            f'echo "python3 $*" >> {self.log}\n'
            'if [ "$1 $2" = "-m venv" ]; then d="${@: -1}"; mkdir -p "$d/bin"\n'
            f'  printf \'#!/bin/sh\\necho "pip $*" >> {self.log}\\n\' > "$d/bin/pip"\n'
            '  cp "$d/bin/pip" "$d/bin/python"; chmod +x "$d/bin/pip" "$d/bin/python"; fi',
        )

    def _stub(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def run(
        self, *args: str, as_user: int | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        prefix = (
            []
            if as_user is None
            else ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups"]
        )
        full_env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")}
        full_env.update(env)
        return subprocess.run(
            [*prefix, "bash", str(INSTALL), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
        )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def dry_steps(stdout: str) -> list[str]:
    return [
        line.removeprefix("DRY-RUN: ")
        for line in stdout.splitlines()
        if line.startswith("DRY-RUN: ")
    ]


def test_bookworm_dry_run_prints_every_step_and_executes_nothing(sandbox):
    proc = sandbox.run("--dry-run", "--os", "bookworm")
    assert proc.returncode == 0, proc.stderr
    steps = dry_steps(proc.stdout)
    assert steps == [
        "apt-get update",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        "python3-venv python3-picamera2 python3-lgpio",
        "groupadd --system gpio",
        "useradd --system --user-group --groups video,gpio --home-dir /var/lib/pi-inspect "
        "--no-create-home --shell /usr/sbin/nologin pi-inspect",
        "install -d -m 0755 /opt/pi-inspect",
        "python3 -m venv --system-site-packages /opt/pi-inspect/venv",
        f"/opt/pi-inspect/venv/bin/pip install --upgrade --constraint "
        f"{REPO}/systemd/constraints-bookworm.txt '{REPO}[edge]'",
        f"install -D -m 0644 {REPO}/docs/service.md /opt/pi-inspect/docs/service.md",
        "install -d -m 0755 /etc/pi-inspect",
        f"install -m 0640 {REPO}/systemd/config.example.toml /etc/pi-inspect/config.toml",
        "chown root:pi-inspect /etc/pi-inspect/config.toml",
        "install -d -m 0750 /var/lib/pi-inspect /var/lib/pi-inspect/models",
        "chown pi-inspect:pi-inspect /var/lib/pi-inspect /var/lib/pi-inspect/models",
        f"install -D -m 0644 {REPO}/systemd/pi-inspect.service "
        "/etc/systemd/system/pi-inspect.service",
        "systemctl daemon-reload",
        "systemctl enable pi-inspect",
        "systemctl restart pi-inspect",
    ]
    assert "Python 3.11" in proc.stdout
    assert sandbox.calls() == []


def test_trixie_dry_run_uses_python_313_without_the_numpy_pin(sandbox):
    proc = sandbox.run("--dry-run", "--os", "trixie", "--version", "0.1.0")
    assert proc.returncode == 0, proc.stderr
    steps = dry_steps(proc.stdout)
    assert "Python 3.13" in proc.stdout
    assert "/opt/pi-inspect/venv/bin/pip install --upgrade 'pi-inspect[edge]==0.1.0'" in steps
    assert not any("constraints-bookworm" in s for s in steps)
    assert "python3 -m venv --system-site-packages /opt/pi-inspect/venv" in steps
    assert steps[-1] == "systemctl restart pi-inspect"
    assert sandbox.calls() == []


def test_os_is_detected_from_os_release(sandbox, tmp_path):
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n')
    proc = sandbox.run("--dry-run", OS_RELEASE=str(os_release))
    assert proc.returncode == 0, proc.stderr
    assert "installing pi-inspect on trixie (Python 3.13)" in proc.stdout


def test_tflite_runtime_on_bookworm_installs_the_tflite_extra_with_numpy_below_2(sandbox):
    proc = sandbox.run("--dry-run", "--os", "bookworm", "--tflite-runtime", "--source", "/src/pi")
    assert proc.returncode == 0, proc.stderr
    pip = [s for s in dry_steps(proc.stdout) if "/pip install " in s]
    assert pip == [
        "/opt/pi-inspect/venv/bin/pip install --upgrade --constraint "
        f"{REPO}/systemd/constraints-bookworm.txt '/src/pi[tflite]'"
    ]
    assert (REPO / "systemd" / "constraints-bookworm.txt").read_text().strip().endswith("numpy<2")


def test_tflite_runtime_is_refused_on_trixie_in_one_line(sandbox):
    proc = sandbox.run("--dry-run", "--os", "trixie", "--tflite-runtime")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "Python 3.13" in proc.stderr
    assert dry_steps(proc.stdout) == []
    assert sandbox.calls() == []


def test_unknown_os_is_refused(sandbox):
    proc = sandbox.run("--dry-run", "--os", "bullseye")
    assert proc.returncode == 2
    assert "bullseye" in proc.stderr


def test_uninstall_keeps_config_and_models_unless_purged(sandbox):
    sandbox.users.write_text("video\ngpio\npi-inspect\n")
    keep = dry_steps(sandbox.run("--dry-run", "--uninstall").stdout)
    purge = dry_steps(sandbox.run("--dry-run", "--uninstall", "--purge").stdout)
    common = [
        "systemctl disable --now pi-inspect",
        "rm -f /etc/systemd/system/pi-inspect.service",
        "systemctl daemon-reload",
        "rm -rf /opt/pi-inspect",
    ]
    assert keep == common
    assert purge == common + [
        "rm -rf /etc/pi-inspect /var/lib/pi-inspect /var/log/pi-inspect",
        "userdel pi-inspect",
    ]
    assert sandbox.calls() == []


def test_real_install_twice_is_idempotent_and_keeps_the_edited_config(sandbox, tmp_path):
    root = tmp_path / "root"
    first = sandbox.run("--os", "trixie", "--source", "/src/pi", ROOT=str(root))
    assert first.returncode == 0, first.stderr
    config = root / "etc/pi-inspect/config.toml"
    assert config.read_text() == (REPO / "systemd/config.example.toml").read_text()
    assert (root / "etc/systemd/system/pi-inspect.service").read_bytes() == (
        REPO / "systemd/pi-inspect.service"
    ).read_bytes()
    assert (root / "var/lib/pi-inspect/models").is_dir()
    first_calls = sandbox.calls()
    assert any(c.startswith("useradd --system") for c in first_calls)
    assert any(c.startswith("python3 -m venv --system-site-packages") for c in first_calls)

    config.write_text("# edited on the device\n")
    sandbox.log.write_text("")
    second = sandbox.run("--os", "trixie", "--source", "/src/pi", ROOT=str(root))
    assert second.returncode == 0, second.stderr
    again = sandbox.calls()
    assert config.read_text() == "# edited on the device\n"
    assert "keeping existing" in second.stdout
    assert not any(c.startswith(("useradd", "groupadd", "python3 -m venv")) for c in again)
    assert "usermod --append --groups video,gpio pi-inspect" in again
    assert "pip install --upgrade /src/pi[edge]" in again  # upgrades the software
    assert again[-1] == "systemctl restart pi-inspect"


def test_real_install_without_useradd_names_the_package_and_changes_nothing(sandbox, tmp_path):
    # A minimal Debian root (Trixie's required set) lacks passwd: groupadd, useradd, usermod.
    if any(shutil.which(t, path="/usr/bin:/bin") for t in ("groupadd", "useradd", "usermod")):
        pytest.skip("this host has the passwd tools on the sandbox's PATH")
    for tool in ("groupadd", "useradd", "usermod"):
        (sandbox.bin / tool).unlink()
    root = tmp_path / "root"
    proc = sandbox.run("--os", "trixie", "--source", "/src/pi", ROOT=str(root))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "install.sh: error: missing command(s): groupadd useradd usermod "
        "(apt-get install passwd); nothing was changed"
    )
    assert sandbox.calls() == [] and not root.exists()


def test_real_install_refuses_without_root_privileges_unless_dry_run(sandbox):
    uid = None
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing to drop privileges")
        uid = 65534  # nobody
    refused = sandbox.run("--os", "bookworm", as_user=uid)
    assert refused.returncode == 2 and "run as root" in refused.stderr, refused.stderr
    allowed = sandbox.run("--os", "bookworm", "--dry-run", as_user=uid)
    assert allowed.returncode == 0, allowed.stderr
    assert sandbox.calls() == []


def test_example_config_passes_check_config(capsys):
    pytest.importorskip(
        "pi_inspect.edge.commands.check_config", reason="check-config command not available yet"
    )
    from pi_inspect.edge.cli import main

    assert main(["check-config", str(REPO / "systemd" / "config.example.toml")]) == 0
    assert "OK" in capsys.readouterr().out


def test_emulated_mode_skips_only_what_a_plain_debian_root_lacks_and_says_so(sandbox):
    # apt-cache knows python3-venv and python3-lgpio; python3-picamera2 has no candidate.
    sandbox._stub(
        "apt-cache",
        'if [ "$2" = python3-picamera2 ]; then echo "  Candidate: (none)"; '
        'else echo "  Candidate: 1.0-1"; fi',
    )
    proc = sandbox.run("--dry-run", "--os", "bookworm", "--emulated")
    assert proc.returncode == 0, proc.stderr
    steps = dry_steps(proc.stdout)
    assert (
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        "python3-venv python3-lgpio"
    ) in steps
    assert "skipping apt package python3-picamera2" in proc.stdout
    assert "skipping systemctl" in proc.stdout
    assert not any(s.startswith("systemctl") for s in steps)
    # The rest is the normal install: venv, the numpy<2 constraint, config, the unit file.
    assert "python3 -m venv --system-site-packages /opt/pi-inspect/venv" in steps
    assert any("constraints-bookworm.txt" in s for s in steps)
    assert steps[-1].endswith("/etc/systemd/system/pi-inspect.service")
    assert sandbox.calls() == []


def test_emulated_mode_can_come_from_the_environment(sandbox):
    sandbox._stub("apt-cache", 'echo "  Candidate: 1.0-1"')
    plain = sandbox.run("--dry-run", "--os", "trixie")
    emulated = sandbox.run("--dry-run", "--os", "trixie", PI_INSPECT_EMULATED="1")
    assert "emulated" not in plain.stdout
    assert "systemctl restart pi-inspect" in dry_steps(plain.stdout)
    assert "emulated root" in emulated.stdout
    assert not any(s.startswith("systemctl") for s in dry_steps(emulated.stdout))
