"""``pi-inspect deploy``: copy a model bundle to a Pi (or a local models directory) and switch to it.

Layout of the models directory::

    MODELS/<name>-<sha12>/   one verified bundle per content (sha256 of its manifest, which
                          names every file's sha256: new thresholds make a new bundle)
    MODELS/current  -> <name>-<sha12>     what the daemon loads (config: model.bundle)
    MODELS/previous -> <name>-<sha12>     what ``--rollback`` goes back to

After a deploy, bundles beyond the ``--keep`` most recently deployed are deleted (``current``
and ``previous`` never are), so a Pi's SD card does not fill up one model at a time.

The copy is verified against its manifest *where it landed* and then loaded by the runtime in a
child process (``python -m pi_inspect.edge.bundle_check``: shapes, labels, signature, golden set; a crash or
hang there refuses the bundle) before ``current`` moves, and the link is switched atomically (``current.tmp`` symlink, then ``os.replace``), so the daemon never
sees a half-copied or corrupt model. For ``user@host:/path`` targets the bundle goes over scp
and the Pi runs ``pi-inspect deploy --local`` itself: the verification code exists once.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.bundle import MANIFEST, verify_bundle
from pi_inspect.edge.errors import BundleError, MissingExtraError, PiInspectError

log = logging.getLogger(__name__)

CURRENT = "current"
PREVIOUS = "previous"
DEFAULT_SERVICE = "pi-inspect"
DEFAULT_KEEP = 3  # current, previous and one more to roll forward to
DEFAULT_REMOTE_COMMAND = "sudo -n /opt/pi-inspect/venv/bin/pi-inspect"
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=10")
_REMOTE = re.compile(r"^(?P<host>[^/:]+):(?P<path>.+)$")  # [user@]host:/path, no slash before ':'

CHECK_TIMEOUT_S = 120.0  # loading and running a golden set takes about a second on a Pi 4

Copier = Callable[[Path, Path], object]
Reloader = Callable[[], None]
Checker = Callable[[Path], None]


class DeployError(PiInspectError, OSError):
    """The copy, the switch, the reload or the remote command failed."""


@dataclass(frozen=True)
class Switch:
    """What a deploy or rollback did, for the one-line report."""

    current: str
    previous: str | None
    reused: bool = False


# --- local models directory ----------------------------------------------------------------


def _link_target(link: Path) -> str | None:
    return os.readlink(link) if link.is_symlink() else None


def _point(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` atomically: a temporary link renamed over it."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)


def _fsync_dir(path: Path) -> None:
    """Persist renames in ``path`` (a power cut right after a deploy must not undo it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=False)


def _match_owner(path: Path, like: Path) -> None:
    """As root, hand the new bundle to the models directory's owner (the service user)."""
    if os.geteuid() != 0:
        return
    st = like.stat()
    for p in [path, *path.rglob("*")]:
        os.chown(p, st.st_uid, st.st_gid, follow_symlinks=False)


def check_in_child(
    bundle: Path, *, timeout_s: float = CHECK_TIMEOUT_S, python: str = sys.executable
) -> None:
    """Load ``bundle`` with this machine's runtime and run its golden set in a child process.

    ``BundleError`` with the child's one-line reason when the bundle is refused, crashes the
    runtime or does not finish within ``timeout_s``; ``MissingExtraError`` without a runtime.
    """
    cmd = [python, "-m", "pi_inspect.edge.bundle_check", str(bundle)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"bundle {bundle}: loading the model did not finish within {timeout_s:g} s"
        ) from None
    except OSError as exc:
        raise DeployError(f"cannot start the bundle check ({exc.strerror or exc})") from None
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    verdict = lines[-1] if lines else ""
    if proc.returncode == 0 and verdict.startswith("ok "):
        log.debug("bundle check: %s", verdict)
        return
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise BundleError(f"bundle {bundle}: the runtime crashed loading the model ({sig})")
    if proc.returncode == 2 and verdict:
        raise MissingExtraError(verdict)
    raise BundleError(verdict or f"bundle {bundle}: the bundle check failed (exit {proc.returncode})")


def install_bundle(
    bundle: Path, models: Path, *, copy: Copier = _copy_tree, check: Checker = check_in_child
) -> tuple[str, bool]:
    """Copy ``bundle`` into ``models`` as ``<name>-<sha12>``, verify the copy there and load it.

    Returns the directory name and whether an identical, still valid copy was already there.
    A copy that does not match its manifest, or that the runtime refuses, is deleted and
    refused with ``BundleError``.
    """
    manifest = verify_bundle(bundle)  # refuse a bad source before copying anything
    name = f"{_safe(manifest.name)}-{manifest.content_sha256[:12]}"
    dest = models / name
    if dest.is_dir():
        try:
            verify_bundle(dest)
        except BundleError:
            log.warning("existing %s does not verify; copying it again", dest)
            shutil.rmtree(dest)
        else:
            try:
                check(dest)
            except BundleError as exc:
                raise BundleError(f"refused, nothing switched: {exc}") from None
            return name, True
    staging = Path(tempfile.mkdtemp(prefix=f".incoming-{name}-", dir=models))
    try:
        incoming = staging / "bundle"
        copy(bundle, incoming)
        try:
            verify_bundle(incoming)
        except BundleError as exc:
            raise BundleError(f"copy refused, nothing switched: {exc}") from None
        try:
            check(incoming)
        except BundleError as exc:
            raise BundleError(f"refused, nothing switched: {exc}") from None
        _match_owner(incoming, models)
        os.rename(incoming, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name, False


def _safe(name: str) -> str:
    """A bundle name usable as a directory name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def switch_to(models: Path, name: str) -> Switch:
    """Point ``current`` at ``name``; the old ``current`` becomes ``previous``."""
    old = _link_target(models / CURRENT)
    if old == name:
        return Switch(current=name, previous=_link_target(models / PREVIOUS), reused=True)
    if old is not None:
        _point(models / PREVIOUS, old)
    _point(models / CURRENT, name)
    _fsync_dir(models)
    return Switch(current=name, previous=old)


def rollback(models: Path, *, check: Checker = check_in_child) -> Switch:
    """Swap ``current`` and ``previous`` after checking the previous bundle still verifies and
    loads."""
    previous = _link_target(models / PREVIOUS)
    if previous is None:
        raise DeployError(f"nothing to roll back to: {models / PREVIOUS} does not exist")
    try:
        verify_bundle(models / previous)
        check(models / previous)
    except BundleError as exc:
        raise BundleError(f"rollback refused, nothing switched: {exc}") from None
    current = _link_target(models / CURRENT)
    _point(models / CURRENT, previous)
    if current is not None:
        _point(models / PREVIOUS, current)
    _fsync_dir(models)
    return Switch(current=previous, previous=current)


def prune(models: Path, keep: int) -> list[str]:
    """Delete bundle directories beyond the ``keep`` most recently deployed; returns their names.

    ``current`` and ``previous`` always stay, whatever ``keep`` says; ``keep`` < 1 prunes nothing.
    Only directories holding a manifest count as bundles, so nothing else in MODELS is touched.
    """
    if keep < 1:
        return []
    pinned = {_link_target(models / CURRENT), _link_target(models / PREVIOUS)} - {None}
    bundles = [
        p
        for p in models.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    ]
    bundles.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    room = max(0, keep - len(pinned))
    others = [p for p in bundles if p.name not in pinned]
    removed = []
    for old in others[room:]:
        shutil.rmtree(old)
        removed.append(old.name)
    return removed


def systemctl_reload(service: str) -> Reloader:
    """Reload a running service (SIGHUP via ExecReload); a stopped one stays stopped."""

    def reload() -> None:
        cmd = ["systemctl", "try-reload-or-restart", service]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise DeployError(
                f"switched, but '{shlex.join(cmd)}' failed: {detail[-1] if detail else proc.returncode}"
            )

    return reload


def deploy_local(
    bundle: Path,
    models: Path,
    *,
    reload: Reloader | None = None,
    copy: Copier = _copy_tree,
    keep: int = DEFAULT_KEEP,
    check: Checker = check_in_child,
) -> Switch:
    """Install, verify and switch to ``bundle`` in the local ``models`` directory, reload, prune.

    Pruning comes last: until the reload, the daemon still runs ``previous``, which is kept.
    """
    if not models.is_dir():
        raise DeployError(f"models directory {models} does not exist (install.sh creates it)")
    name, reused = install_bundle(bundle, models, copy=copy, check=check)
    os.utime(models / name)  # "most recently deployed" is what pruning keeps
    result = switch_to(models, name)
    if reload is not None and not result.reused:
        reload()
    for old in prune(models, keep):
        log.info("pruned old bundle %s", old)
    return Switch(result.current, result.previous, reused=reused or result.reused)


def rollback_local(
    models: Path, *, reload: Reloader | None = None, check: Checker = check_in_child
) -> Switch:
    result = rollback(models, check=check)
    if reload is not None:
        reload()
    return result


# --- remote (ssh/scp) -----------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteTarget:
    host: str  # [user@]host
    path: str  # the models directory on the Pi


def parse_target(target: str) -> RemoteTarget | None:
    """``user@host:/path`` is remote; a path (even one with ':' after a '/') is local."""
    m = _REMOTE.match(target)
    return RemoteTarget(m["host"], m["path"]) if m else None


def _run(cmd: Sequence[str], what: str) -> str:
    log.debug("running %s", shlex.join(cmd))
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise DeployError(f"{what}: '{cmd[0]}' is not installed") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise DeployError(f"{what} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


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
) -> str:
    """Copy the bundle to a staging dir on the Pi and run ``deploy --local`` there."""
    flags = ["--local", "--service", service, "--keep", str(keep)]
    flags += [] if reload else ["--no-reload"]
    if rollback:
        remote = f"{remote_command} deploy {shlex.join([*flags, '--rollback', target.path])}"
        return _run([ssh, *SSH_OPTIONS, target.host, remote], f"rollback on {target.host}")
    if bundle is None:
        raise DeployError("deploy needs BUNDLE and TARGET")
    staging = _run(
        [ssh, *SSH_OPTIONS, target.host, "mktemp -d /tmp/pi-inspect-deploy.XXXXXX"],
        f"ssh {target.host}",
    ).strip()
    if not staging.startswith("/tmp/pi-inspect-deploy."):
        raise DeployError(f"ssh {target.host}: unexpected staging directory {staging!r}")
    remote_bundle = f"{staging}/{bundle.name}"
    try:
        _run([scp, *SSH_OPTIONS, "-r", "-q", str(bundle), f"{target.host}:{staging}/"], "scp")
        remote = f"{remote_command} deploy {shlex.join([*flags, remote_bundle, target.path])}"
        return _run([ssh, *SSH_OPTIONS, target.host, remote], f"deploy on {target.host}")
    finally:
        try:
            _run([ssh, *SSH_OPTIONS, target.host, f"rm -rf {shlex.quote(staging)}"], "cleanup")
        except DeployError as exc:
            log.warning("%s (staging %s left on %s)", exc, staging, target.host)
