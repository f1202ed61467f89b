"""`pi-inspect deploy`: copy a bundle to a Pi (or a local models folder) and switch to it.

The report goes to stdout; each warning (files the bundle's manifest does not list, the bundle
check's warnings, such as a bundle without a golden set) is one ``warning: `` line on stderr,
which a deploy to a Pi passes back to the workstation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pi_inspect.edge.bundle_check import WARNING
from pi_inspect.edge.deploy import (
    DEFAULT_KEEP,
    DEFAULT_SERVICE,
    DeployError,
    deploy_local,
    rollback_local,
    systemctl_reload,
)
from pi_inspect.edge.deploy_ssh import DEFAULT_REMOTE_COMMAND, deploy_remote, parse_target


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "pi-inspect deploy [options] BUNDLE TARGET\n       pi-inspect deploy --rollback TARGET"
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="BUNDLE TARGET",
        help="bundle directory and a models directory, local or [user@]host:/var/lib/pi-inspect/models",
    )
    parser.add_argument(
        "--rollback", action="store_true", help="switch back to the previous bundle"
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="switch without reloading the service (default: reload it where it is installed)",
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create a local models directory that does not exist yet (default: refuse, as a "
        "mistyped path would otherwise deploy where no daemon looks)",
    )
    parser.add_argument(
        "--service",
        default=DEFAULT_SERVICE,
        help="systemd service to reload",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help="keep the N most recently deployed bundles, current and previous always (0 keeps all)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="TARGET is a local path even if it looks like host:path",
    )
    parser.add_argument(
        "--remote-command",
        default=DEFAULT_REMOTE_COMMAND,
        help="how the Pi runs pi-inspect",
    )


def run(args: argparse.Namespace) -> int:
    expected = 1 if args.rollback else 2
    if len(args.paths) != expected:
        usage = "--rollback TARGET" if args.rollback else "BUNDLE TARGET"
        raise DeployError(f"expected {usage}, got {len(args.paths)} path(s)")
    target = args.paths[-1]
    bundle = None if args.rollback else Path(args.paths[0])
    remote = None if args.local else parse_target(target)
    if remote is not None:
        out = deploy_remote(
            bundle,
            remote,
            rollback=args.rollback,
            reload=not args.no_reload,
            service=args.service,
            remote_command=args.remote_command,
            keep=args.keep,
            create=args.create,
            warn=_warn,
        )
        print(out.strip())
        return 0
    models = Path(target)
    if not args.rollback:
        _models_folder(models, create=args.create)
    reload, why = _reloader(args)
    if args.rollback:
        result = rollback_local(models, reload=reload)
        print(f"rolled back {models}: current is now {result.current}{_previous(result)}")
    else:
        result = deploy_local(bundle, models, reload=reload, keep=args.keep)
        note = " (already deployed there)" if result.reused else ""
        print(f"deployed {bundle} to {models}: current is {result.current}{note}{_previous(result)}")
    print(why)
    for line in result.warnings:
        _warn(line)
    return 0


def _warn(line: str) -> None:
    print(f"{WARNING}{line}", file=sys.stderr, flush=True)


def _models_folder(models: Path, *, create: bool) -> None:
    """Make the models folder with ``--create``; without it, refuse a missing one, naming it."""
    if models.is_dir():
        return
    if not create:
        if models.exists():
            raise DeployError(f"models directory {models} is not a directory")
        raise DeployError(
            f"models directory {models} does not exist: check the path, or add --create to make "
            "it (install.sh makes /var/lib/pi-inspect/models)"
        )
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeployError(f"cannot create models directory {models} ({exc.strerror or exc})") from None


def _previous(result) -> str:
    return f", previous is {result.previous}" if result.previous else " (no previous bundle)"


def service_installed(service: str) -> bool:
    """Whether systemd runs here and knows ``service`` (a workstation usually has neither)."""
    import shutil
    import subprocess

    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return False
    try:
        proc = subprocess.run(
            ["systemctl", "cat", "--", f"{service}.service"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _reloader(args: argparse.Namespace):
    """The reload to run after the switch, and one line saying what happens."""
    if args.no_reload:
        return None, "not reloaded (--no-reload): the daemon loads it on its next start or SIGHUP"
    if not service_installed(args.service):
        return None, (
            f"not reloaded: no systemd service {args.service!r} here; a daemon using this "
            "folder loads it on its next start or SIGHUP"
        )
    return systemctl_reload(args.service), f"service {args.service} reloaded"
