"""``pi-inspect check-config FILE``: validate a daemon config and print every problem.

Exit 0 and a one-line summary when valid; otherwise each problem as ``key.path: message`` on
stderr and exit 2 (the dispatcher turns ``ConfigError`` into that). Besides the validators it runs
the same filesystem pre-flight as ``run`` (``edge.preflight``), so what passes here starts there.
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="TOML config file to validate")


def run(args: argparse.Namespace) -> int:
    from edge import preflight
    from edge.config import load_config

    config = load_config(args.config)
    preflight.check(config)  # what run would refuse on this machine
    bundle = config.model.bundle or "built-in demo bundle"
    print(
        f"{args.config}: OK (source {config.source.kind}:{config.source.uri}, "
        f"model {bundle}, trigger {config.trigger.mode})"
    )
    return 0
