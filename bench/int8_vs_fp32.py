#!/usr/bin/env python3
"""int8 vs float32 latency of one bundle on LiteRT, measured side by side in one run.

    python bench/int8_vs_fp32.py [BUNDLE] [--threads 1] [--runs 500]

Both models come from the same conversion (model.tflite and its float32 reference); they are
timed in interleaved rounds so machine noise falls on both. Prints sizes, MACs, p50/p95 and the
int8/fp32 ratio of the medians (the target is <= 0.5).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pi_inspect.convert.bench import bench_bundle, report  # noqa: E402
from pi_inspect.edge.bundle import default_bundle_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path, nargs="?", default=default_bundle_dir())
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    results = bench_bundle(args.bundle, threads=args.threads, runs=args.runs, rounds=10)
    print(f"bundle {args.bundle}")
    print(report(results, args.threads))
    by = {r.kind: r for r in results}
    ratio = by["int8"].p50_ms / by["float32"].p50_ms
    print(f"RESULT int8/fp32 = {ratio:.3f} ({'meets' if ratio <= 0.5 else 'misses'} <= 0.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
