"""``pi-inspect config``: a complete commented config, the reference of every key, or an old
config file rewritten for this version."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--example",
        action="store_true",
        help="print a complete config: every key at its default, with meaning, type and bounds",
    )
    what.add_argument(
        "--reference",
        action="store_true",
        help="print the reference of every key as Markdown (docs/config.md)",
    )
    what.add_argument(
        "--migrate",
        metavar="FILE",
        help="print FILE with every renamed or removed key updated (comments are not kept)",
    )


def run(args: argparse.Namespace) -> int:
    if args.migrate:
        return _migrate(args.migrate)
    from pi_inspect.edge.config_doc import example_toml, reference_markdown

    print(example_toml() if args.example else reference_markdown(), end="")
    return 0


def _migrate(path: str) -> int:
    """The file updated on stdout, what changed on stderr; a value that cannot be carried over
    is a config problem (exit 2), and the result must pass as the daemon would read it."""
    from pi_inspect.edge.config import parse_config, read_toml
    from pi_inspect.edge.config_migrate import dumps, migrate
    from pi_inspect.edge.errors import ConfigError

    data, warnings, problems = migrate(read_toml(path))
    if problems:
        raise ConfigError(f"cannot migrate {path}: {len(problems)} problem(s)", problems)
    parse_config(data)  # every other problem, with its key path, before anything is printed
    for line in warnings:
        print(f"updated {line}", file=sys.stderr)
    if not warnings:
        print(f"{path}: nothing to update", file=sys.stderr)
    print(f"# {Path(path).name}, updated by pi-inspect config --migrate\n")
    print(dumps(data), end="")
    return 0
