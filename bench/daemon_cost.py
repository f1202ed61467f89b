"""The daemon's own CPU per frame: everything it does around the model, with the model and the
decode taken out.

The demo bundle's classifier answers every frame with one precomputed prediction (its labels,
thresholds and rules stay real), and the source hands out frames already at the model's input
size, so what is left is the daemon: capture thread, queue hand-off, trigger gate, debouncer,
result and state, stats, health polling, dispatch. Side by side with a bare two-thread pipeline
that moves the same frames through a 4-deep queue to the same instant model, rounds alternating
which arm runs first.

    python bench/daemon_cost.py [--frames 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import KeptOpen, bare_pipeline, daemon_for  # noqa: E402 - shared with the other benches


class Instant(KeptOpen):
    """The real classifier's labels and rules; ``predict`` returns one precomputed answer."""

    def __init__(self, inner, rgb: np.ndarray) -> None:
        super().__init__(inner)
        self._answer = inner.predict(rgb, with_features=False)

    def predict(self, rgb: np.ndarray, with_features: bool = True):
        return self._answer


class Prepared:
    """A file-like source of ``count`` frames already at the model input size."""

    live = False
    name = "prepared frames"

    def __init__(self, image: np.ndarray, count: int) -> None:
        self._image, self._count, self._given = image, count, 0

    def open(self) -> None:
        self._given = 0

    def read(self):
        from pi_inspect.edge.view import Frame

        if self._given >= self._count:
            return None
        self._given += 1
        return Frame(self._given, time.time(), self._image)

    def close(self) -> None:
        pass


def daemon_arm(clf, image: np.ndarray, frames: int) -> tuple[int, float]:
    daemon = daemon_for(Path(os.devnull), clf, source_factory=lambda: Prepared(image, frames))
    c0 = time.process_time()
    summary = daemon.run(threading.Event())
    return summary.frames, time.process_time() - c0


def bare_arm(clf, image: np.ndarray, frames: int) -> tuple[int, float]:
    return bare_pipeline(lambda: Prepared(image, frames), clf, clock=time.process_time)


def main() -> int:
    from pi_inspect.edge.runtime import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    real = load_classifier(args.bundle, num_threads=1)
    w, h = real.input_size
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    clf = Instant(real, image)
    us: dict[str, list[float]] = {"bare": [], "daemon": []}
    arms = [("bare", bare_arm), ("daemon", daemon_arm)]
    for r in range(args.rounds):
        for name, arm in arms if r % 2 == 0 else arms[::-1]:
            n, cpu_s = arm(clf, image, args.frames)
            us[name].append(cpu_s * 1e6 / n)
    b, d = statistics.median(us["bare"]), statistics.median(us["daemon"])
    print(f"{args.frames} frames x {args.rounds} rounds, instant model ({w}x{h} input), "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"  bare pipeline: {b:6.1f} us CPU/frame  ({', '.join(f'{x:.0f}' for x in us['bare'])})")
    print(f"  daemon:        {d:6.1f} us CPU/frame  ({', '.join(f'{x:.0f}' for x in us['daemon'])})")
    print(f"  the daemon's own cost: {d - b:.1f} us CPU per frame more than the bare pipeline")
    real.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
