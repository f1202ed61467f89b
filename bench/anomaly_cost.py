#!/usr/bin/env python3
"""int8 anomaly model vs the demo classifier: invoke cost side by side in one run.

    python bench/anomaly_cost.py [--anomaly BUNDLE] [--classifier BUNDLE] [--threads 1]
                                 [--runs 400] [--rounds 8]

Both bundles load through the edge runtime (LiteRT, as on the Pi) and run the same prepared
frames (rendered seam stills at the models' input size). Rounds alternate which model runs
first so machine noise falls on both; each round times ``--runs`` invokes per model. Prints
p50/p95 per model and the ratio of the medians (the anomaly model must cost at most 1.5x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pi_inspect.edge.bundle import anomaly_bundle_dir, default_bundle_dir  # noqa: E402


def frames(size: tuple[int, int], count: int = 16) -> list[np.ndarray]:
    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.synth.still import render_still

    return [prepare(render_still(3, i, (128, 128)).image, size) for i in range(count)]


def time_invokes(model, images: list[np.ndarray], runs: int) -> list[float]:
    out = []
    for i in range(runs):
        t = time.perf_counter()
        model.predict(images[i % len(images)], with_features=False)
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def main() -> int:
    from pi_inspect.edge.runtime import load_classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anomaly", type=Path, default=anomaly_bundle_dir())
    ap.add_argument("--classifier", type=Path, default=default_bundle_dir())
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    models = {
        "classifier": load_classifier(args.classifier, num_threads=args.threads),
        "anomaly": load_classifier(args.anomaly, num_threads=args.threads),
    }
    sizes = {m.input_size for m in models.values()}
    images = {name: frames(m.input_size) for name, m in models.items()}
    for name, m in models.items():  # warm up: first invokes allocate and pack weights
        time_invokes(m, images[name], 50)
    times: dict[str, list[float]] = {name: [] for name in models}
    ratios = []
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(reversed(models))
        medians = {}
        for name in order:
            t = time_invokes(models[name], images[name], args.runs)
            times[name].extend(t)
            medians[name] = statistics.median(t)
        ratios.append(medians["anomaly"] / medians["classifier"])
    print(f"classifier {args.classifier}\nanomaly    {args.anomaly}")
    print(f"input sizes {sorted(sizes)}, {args.threads} thread(s), {args.rounds} rounds x {args.runs} invokes")
    for name, t in times.items():
        q = np.percentile(t, [50, 95])
        print(f"  {name:<10} p50 {q[0]:.3f} ms  p95 {q[1]:.3f} ms")
    p50 = {name: float(np.percentile(t, 50)) for name, t in times.items()}
    ratio = p50["anomaly"] / p50["classifier"]
    print(
        f"RESULT anomaly/classifier = {ratio:.3f} (median of per-round ratios "
        f"{statistics.median(ratios):.3f}; {'meets' if ratio <= 1.5 else 'misses'} <= 1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
