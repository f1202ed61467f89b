"""``pi-inspect bench BUNDLE [--threads N]``: int8 vs float32 latency, sizes, MACs, Pi estimates."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, nargs="?", default=None,
                        help="bundle directory (default: the built-in demo bundle)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--runs", type=int, default=300, help="timed invokes per model")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.convert.bench import bench_bundle, report
    from pi_inspect.edge.bundle import default_bundle_dir

    bundle = args.bundle or default_bundle_dir()
    results = bench_bundle(bundle, threads=args.threads, runs=args.runs)
    print(f"bundle {bundle}")
    print(report(results, args.threads))
    return 0
