"""``pi-inspect config``: a complete commented config, or the reference of every key."""

from __future__ import annotations

import argparse


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


def run(args: argparse.Namespace) -> int:
    from edge.config_doc import example_toml, reference_markdown

    print(example_toml() if args.example else reference_markdown(), end="")
    return 0
