"""``pi-inspect deploy`` to ``[user@]host:/path``: send the bundle over scp, deploy it there.

The Pi runs ``pi-inspect deploy --local`` itself, so verification, the child load check and
the switch are the code of ``deploy``, once. What is sent is what a local deploy would copy.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.bundle_check import MAX_WARNING_CHARS, WARNING
from pi_inspect.edge.bundle_copy import stage_listed
from pi_inspect.edge.deploy import DEFAULT_KEEP, DEFAULT_SERVICE, DeployError

log = logging.getLogger(__name__)

DEFAULT_REMOTE_COMMAND = "sudo -n /opt/pi-inspect/venv/bin/pi-inspect"
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
RUN_TIMEOUT_S = 600
_REMOTE = re.compile(r"^(?P<host>[^/:]+):(?P<path>.+)$")  # [user@]host:/path, no slash before ':'

Warn = Callable[[str], object]


@dataclass(frozen=True)
class RemoteTarget:
    host: str  # [user@]host
    path: str  # the models directory on the Pi


def parse_target(target: str) -> RemoteTarget | None:
    """``user@host:/path`` is remote; a path (even one with ':' after a '/') is local."""
    m = _REMOTE.match(target)
    return RemoteTarget(m["host"], m["path"]) if m else None


def _run(cmd: Sequence[str], what: str, warn: Warn | None = None) -> str:
    """Run ``cmd``; its stdout, or ``DeployError`` with its last line. ``warn`` gets each
    ``warning: `` line it wrote on stderr (how ``pi-inspect deploy`` on the Pi warns)."""
    log.debug("running %s", shlex.join(cmd))
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except FileNotFoundError:
        raise DeployError(f"{what}: '{cmd[0]}' is not installed") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what} did not finish within {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DeployError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    if warn is not None:
        for line in proc.stderr.splitlines():
            if line.startswith(WARNING) and line[len(WARNING) :].strip():
                warn(line[len(WARNING) :].strip()[:MAX_WARNING_CHARS])
    return proc.stdout


def _log_warning(line: str) -> None:
    log.warning("%s", line)


def deploy_remote(
    bundle: Path | None,
    target: RemoteTarget,
    *,
    rollback: bool = False,
    reload: bool = True,
    service: str = DEFAULT_SERVICE,
    remote_command: str = DEFAULT_REMOTE_COMMAND,
    ssh: str = "ssh",
    scp: str = "scp",
    keep: int = DEFAULT_KEEP,
    create: bool = False,
    warn: Warn = _log_warning,
) -> str:
    """Send the bundle to a staging dir on the Pi and run ``deploy --local`` there.

    What is sent is only what a local deploy would copy: the manifest and the files it lists are
    first copied, as bounded regular files, into a local temporary folder (``stage_listed``),
    and scp sends that folder, which holds nothing else; so no link, device or unlisted file in
    the bundle folder leaves this machine. Both temporary folders are removed whatever happens.
    ``warn`` gets the left-out line and each warning the Pi's deploy prints.
    """
    flags = ["--local", "--service", service, "--keep", str(keep)]
    flags += [] if reload else ["--no-reload"]
    flags += ["--create"] if create and not rollback else []
    if rollback:
        remote = f"{remote_command} deploy {shlex.join([*flags, '--rollback', target.path])}"
        return _run([ssh, *SSH_OPTIONS, target.host, remote], f"rollback on {target.host}", warn)
    if bundle is None:
        raise DeployError("deploy needs BUNDLE and TARGET")
    with tempfile.TemporaryDirectory(prefix="pi-inspect-stage.") as local:
        try:
            staged, note = stage_listed(bundle, Path(local))
        except OSError as exc:  # a full /tmp, a read error
            if isinstance(exc, DeployError):
                raise
            raise DeployError(f"staging {bundle} for {target.host} failed: {exc.strerror or exc}") from None
        if note is not None:
            warn(note)
        return _send(staged, target, flags, remote_command=remote_command, ssh=ssh, scp=scp, warn=warn)


def _send(
    staged: Path, target: RemoteTarget, flags: list[str], *, remote_command: str, ssh: str, scp: str, warn: Warn
) -> str:
    """scp the staged folder to a fresh staging dir on the Pi, deploy it there, remove it."""
    staging = _run(
        [ssh, *SSH_OPTIONS, target.host, "mktemp -d /tmp/pi-inspect-deploy.XXXXXX"],
        f"ssh {target.host}",
    ).strip()
    if not staging.startswith("/tmp/pi-inspect-deploy."):
        raise DeployError(f"ssh {target.host}: unexpected staging directory {staging!r}")
    remote_bundle = f"{staging}/{staged.name}"
    try:
        _run([scp, *SSH_OPTIONS, "-r", "-q", str(staged), f"{target.host}:{staging}/"], "scp")
        remote = f"{remote_command} deploy {shlex.join([*flags, remote_bundle, target.path])}"
        return _run([ssh, *SSH_OPTIONS, target.host, remote], f"deploy on {target.host}", warn)
    finally:
        try:
            _run([ssh, *SSH_OPTIONS, target.host, f"rm -rf {shlex.quote(staging)}"], "cleanup")
        except DeployError as exc:
            log.warning("%s (staging %s left on %s)", exc, staging, target.host)
