"""`pi-inspect doctor`: check this device line by line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pi_inspect.edge.doctor import DEFAULT_CONFIG, collect


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=None, help=f"config file (default: {DEFAULT_CONFIG} if present)"
    )
    parser.add_argument("--service", default="pi-inspect", help="systemd service to check")
    parser.add_argument(
        "--skip", action="append", default=[], help="skip a check by name (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    import warnings

    # One line per check: OpenCV's and gpiozero's own warnings would interleave with them, and
    # each check already turns those failures into its FAIL line with a fix hint.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    warnings.simplefilter("ignore")
    from pi_inspect.edge import preflight
    from pi_inspect.edge.config import load_config

    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None)
    config = load_config(path)
    preflight.check(config)  # the checks below need paths that can exist
    print(f"pi-inspect doctor ({path or 'built-in defaults'})")
    failed = 0
    skip = set(args.skip)
    for name, check in collect(config, args.service):
        if name in skip:
            continue
        result = check()
        print(result.line(), flush=True)
        failed += not result.ok
    return 1 if failed else 0
