"""``pi-inspect deploy``: copy a model bundle to a Pi (or a local models directory) and switch to it.

Layout of the models directory::

    MODELS/<name>-<sha12>/   one verified bundle per content (sha256 of its manifest, which
                          names every file's sha256: new thresholds make a new bundle)
    MODELS/current  -> <name>-<sha12>     what the daemon loads (config: model.bundle)
    MODELS/previous -> <name>-<sha12>     what ``--rollback`` goes back to

After a deploy, bundles beyond the ``--keep`` most recently deployed are deleted (``current``
and ``previous`` never are), so a Pi's SD card does not fill up one model at a time.

Only ``manifest.json`` and the files it lists are copied, each a bounded regular file
(``bundle_copy``): whatever else lies in the bundle folder is left out and named in one line.
The copy is verified against its manifest *where it landed* and then loaded by the runtime in a
child process (``python -m pi_inspect.edge.bundle_check``: shapes, labels, signature, golden set; a crash or
hang there refuses the bundle, its warnings reach the operator) before ``current`` moves, and
the link is switched atomically (``current.tmp`` symlink, then ``os.replace``), so the daemon
never sees a half-copied or corrupt model. For ``user@host:/path`` targets the bundle goes over scp
and the Pi runs ``pi-inspect deploy --local`` itself (``deploy_ssh``): the verification code
exists once.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.bundle import MANIFEST, read_manifest, verify_bundle
from pi_inspect.edge.bundle_check import child_warnings
from pi_inspect.edge.bundle_copy import (
    check_listed,
    copy_listed,
    fsync_dir,
    left_out,
    left_out_line,
    match_owner,
    safe_name,
)
from pi_inspect.edge.errors import BundleError, MissingExtraError, PiInspectError

log = logging.getLogger(__name__)

CURRENT = "current"
PREVIOUS = "previous"
DEFAULT_SERVICE = "pi-inspect"
DEFAULT_KEEP = 3  # current, previous and one more to roll forward to

CHECK_TIMEOUT_S = 120.0  # loading and running a golden set takes about a second on a Pi 4

Copier = Callable[[Path, Path], object]
Reloader = Callable[[], None]
Checker = Callable[[Path], Sequence[str] | None]  # the check's warnings; raises when refused


class DeployError(PiInspectError, OSError):
    """The copy, the switch, the reload or the remote command failed."""


@dataclass(frozen=True)
class Switch:
    """What a deploy or rollback did, for the one-line report."""

    current: str
    previous: str | None
    reused: bool = False
    warnings: tuple[str, ...] = ()  # one line each: files left out, the bundle check's warnings


@dataclass(frozen=True)
class Installed:
    """A bundle copied (or found) in the models directory, verified and loaded."""

    name: str
    reused: bool
    warnings: tuple[str, ...] = ()


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


def check_in_child(
    bundle: Path, *, timeout_s: float = CHECK_TIMEOUT_S, python: str = sys.executable
) -> list[str]:
    """Load ``bundle`` with this machine's runtime and run its golden set in a child process.

    Returns the child's warnings (its ``warning: `` lines on stdout, a runtime's ``WARNING``
    lines on stderr), one line each, for the operator. ``BundleError`` with the child's one-line
    reason when the bundle is refused, crashes the runtime or does not finish within
    ``timeout_s``; ``MissingExtraError`` without a runtime.
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
        return child_warnings(proc.stdout, proc.stderr)
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise BundleError(f"bundle {bundle}: the runtime crashed loading the model ({sig})")
    if proc.returncode == 2 and verdict:
        raise MissingExtraError(verdict)
    raise BundleError(verdict or f"bundle {bundle}: the bundle check failed (exit {proc.returncode})")


def _checked(check: Checker, at: Path, source: Path) -> list[str]:
    """Run ``check`` on the copy at ``at``; its warnings name ``source``, which the user gave."""
    try:
        found = check(at) or ()
    except BundleError as exc:
        raise BundleError(f"refused, nothing switched: {exc}") from None
    return [line.replace(str(at), str(source)) for line in found]


def install_bundle(
    bundle: Path, models: Path, *, copy: Copier = copy_listed, check: Checker = check_in_child
) -> Installed:
    """Copy ``bundle`` into ``models`` as ``<name>-<sha12>``, verify the copy there and load it.

    Only the manifest and the files it lists are copied; what else the folder holds is named in
    the warnings. A listed file that is not a bounded regular file refuses the deploy before
    anything is read. A copy that does not match its manifest, or that the runtime refuses, is
    deleted and refused with ``BundleError``; a failed or interrupted copy leaves nothing in
    ``models``.
    """
    check_listed(bundle, read_manifest(bundle))  # no link, FIFO or device is ever read
    manifest = verify_bundle(bundle)  # refuse a bad source before copying anything
    notes = [line] if (line := left_out_line(left_out(bundle, manifest))) else []
    name = f"{safe_name(manifest.name)}-{manifest.content_sha256[:12]}"
    dest = models / name
    if dest.is_dir():
        try:
            verify_bundle(dest)
        except BundleError:
            log.warning("existing %s does not verify; copying it again", dest)
            shutil.rmtree(dest)
        else:
            return Installed(name, True, tuple(notes + _checked(check, dest, dest)))
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".incoming-{name}-", dir=models))
    except OSError as exc:
        raise DeployError(f"cannot write to {models} ({exc.strerror or exc})") from None
    try:
        incoming = staging / "bundle"
        try:
            copy(bundle, incoming)
        except OSError as exc:  # a full disk, a read error: one line, nothing left behind
            if isinstance(exc, PiInspectError):
                raise
            raise DeployError(f"copy to {models} failed, nothing switched: {exc.strerror or exc}") from None
        try:
            verify_bundle(incoming)
        except BundleError as exc:
            raise BundleError(f"copy refused, nothing switched: {exc}") from None
        notes += _checked(check, incoming, bundle)
        match_owner(incoming, models)
        os.rename(incoming, dest)
    finally:  # any exception, an interrupt included: no half-made copy stays behind
        shutil.rmtree(staging, ignore_errors=True)
    return Installed(name, False, tuple(notes))


def switch_to(models: Path, name: str) -> Switch:
    """Point ``current`` at ``name``; the old ``current`` becomes ``previous``."""
    old = _link_target(models / CURRENT)
    if old == name:
        return Switch(current=name, previous=_link_target(models / PREVIOUS), reused=True)
    if old is not None:
        _point(models / PREVIOUS, old)
    _point(models / CURRENT, name)
    fsync_dir(models)
    return Switch(current=name, previous=old)


def rollback(models: Path, *, check: Checker = check_in_child) -> Switch:
    """Swap ``current`` and ``previous`` after checking the previous bundle still verifies and
    loads."""
    previous = _link_target(models / PREVIOUS)
    if previous is None:
        raise DeployError(f"nothing to roll back to: {models / PREVIOUS} does not exist")
    try:
        verify_bundle(models / previous)
        notes = tuple(check(models / previous) or ())
    except BundleError as exc:
        raise BundleError(f"rollback refused, nothing switched: {exc}") from None
    current = _link_target(models / CURRENT)
    _point(models / CURRENT, previous)
    if current is not None:
        _point(models / PREVIOUS, current)
    fsync_dir(models)
    return Switch(current=previous, previous=current, warnings=notes)


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
    copy: Copier = copy_listed,
    keep: int = DEFAULT_KEEP,
    check: Checker = check_in_child,
) -> Switch:
    """Install, verify and switch to ``bundle`` in the local ``models`` directory, reload, prune.

    Pruning comes last: until the reload, the daemon still runs ``previous``, which is kept.
    """
    if not models.is_dir():
        raise DeployError(f"models directory {models} does not exist (install.sh creates it)")
    installed = install_bundle(bundle, models, copy=copy, check=check)
    os.utime(models / installed.name)  # "most recently deployed" is what pruning keeps
    result = switch_to(models, installed.name)
    if reload is not None and not result.reused:
        reload()
    for old in prune(models, keep):
        log.info("pruned old bundle %s", old)
    reused = installed.reused or result.reused
    return Switch(result.current, result.previous, reused=reused, warnings=installed.warnings)


def rollback_local(
    models: Path, *, reload: Reloader | None = None, check: Checker = check_in_child
) -> Switch:
    result = rollback(models, check=check)
    if reload is not None:
        reload()
    return result
