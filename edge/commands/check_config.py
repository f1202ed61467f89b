"""``pi-inspect check-config FILE``: validate a daemon config and print every problem.

Exit 0 and a one-line summary when valid (a key an upgrade renamed or removed is a warning
line on stderr first, saying what to write instead: the file still runs); otherwise each problem as ``key.path: message`` on
stderr and exit 2 (the dispatcher turns ``ConfigError`` into that). Besides the validators it runs
the same filesystem pre-flight as ``run`` (``pi_inspect.edge.preflight``), so what passes here starts there.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML config file to validate")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge import preflight
    from pi_inspect.edge.config import load_config

    warnings: list[str] = []
    config = load_config(args.config, warn=warnings.append)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    preflight.check(config)  # what run would refuse on this machine
    bundle = config.model.bundle or "built-in demo bundle"
    if warnings:
        print(f"pi-inspect config --migrate {args.config} prints it updated", file=sys.stderr)
    print(
        f"{args.config}: OK (source {config.source.kind}:{config.source.uri}, "
        f"model {bundle}, trigger {config.trigger.mode})"
    )
    return 0
