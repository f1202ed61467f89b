"""`pi-inspect deploy`: copy a bundle to a Pi (or a local models folder) and switch to it."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.deploy import (
    DEFAULT_KEEP,
    DEFAULT_REMOTE_COMMAND,
    DEFAULT_SERVICE,
    DeployError,
    deploy_local,
    deploy_remote,
    parse_target,
    rollback_local,
    systemctl_reload,
)


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
        "--no-reload", action="store_true", help="switch without reloading the service"
    )
    parser.add_argument("--service", default=DEFAULT_SERVICE, help="systemd service to reload")
    parser.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help=f"keep the N most recently deployed bundles, current and previous always (default "
        f"{DEFAULT_KEEP}; 0 keeps all)",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="TARGET is a local path even if it looks like host:path",
    )
    parser.add_argument(
        "--remote-command",
        default=DEFAULT_REMOTE_COMMAND,
        help=f"how the Pi runs pi-inspect (default: {DEFAULT_REMOTE_COMMAND!r})",
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
        )
        print(out.strip())
        return 0
    reload = None if args.no_reload else systemctl_reload(args.service)
    models = Path(target)
    if args.rollback:
        result = rollback_local(models, reload=reload)
        print(f"rolled back: current -> {result.current}, previous -> {result.previous}")
        return 0
    result = deploy_local(bundle, models, reload=reload, keep=args.keep)
    note = " (already deployed)" if result.reused else ""
    print(f"deployed: current -> {result.current}{note}, previous -> {result.previous}")
    return 0
