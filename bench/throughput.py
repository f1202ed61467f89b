"""Pipelined daemon vs a naive sequential read -> resize -> invoke loop, side by side.

Same bundle, same interpreter settings, same video file (640x480, like a USB camera), every
frame inferred in both (the daemon's file sources apply back-pressure, they do not drop).
Rounds alternate between the two so background load hits both alike; the ratio of median
throughputs is printed.

    python bench/throughput.py [--bundle DIR] [--frames 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def make_video(path: Path, frames: int, size: tuple[int, int] = (640, 480)) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
    for i in range(frames):
        writer.write(np.roll(base, i * 3, axis=1))
    writer.release()
    return path


def naive(video: Path, bundle: str | None, threads: int | None) -> tuple[int, float]:
    """read -> prepare -> predict, one after the other."""
    import cv2

    from edge.preprocess import prepare
    from edge.runtime import load_classifier

    clf = load_classifier(bundle, num_threads=threads)
    cap = cv2.VideoCapture(str(video))
    n = 0
    t0 = time.monotonic()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        clf.predict(prepare(frame, clf.input_size), with_features=False)
        n += 1
    elapsed = time.monotonic() - t0
    cap.release()
    clf.close()
    return n, elapsed


def pipelined(video: Path, bundle: str | None, threads: int | None) -> tuple[int, float]:
    """The daemon itself on the same file (snapshots, GPIO and stdout off)."""
    from edge.config import parse_config
    from edge.daemon import Daemon
    from edge.runtime import load_classifier

    clf = load_classifier(bundle, num_threads=threads)  # load outside the timed part, as naive
    settings = {
        "source": {"kind": "file", "uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"enabled": False},
        "output": {"stdout": False},
        "pipeline": {"drop": "block", "queue": 4},
    }
    daemon = Daemon(parse_config(settings), outputs=[], classifier_loader=lambda _m: clf)
    summary = daemon.run(threading.Event())
    return summary.frames, summary.elapsed_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (both)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "bench.mp4", args.frames)
        fps_naive, fps_pipe = [], []
        for _ in range(args.rounds):
            n, s = naive(video, args.bundle, args.threads)
            fps_naive.append(n / s)
            n2, s2 = pipelined(video, args.bundle, args.threads)
            if n2 != n:
                print(f"frame counts differ: naive {n}, pipelined {n2}", file=sys.stderr)
                return 1
            fps_pipe.append(n2 / s2)
    a, b = statistics.median(fps_naive), statistics.median(fps_pipe)
    print(f"frames per run: {n} (640x480 video), rounds: {args.rounds}")
    print(f"naive sequential: {a:.1f} FPS  (runs: {', '.join(f'{x:.1f}' for x in fps_naive)})")
    print(f"daemon pipeline:  {b:.1f} FPS  (runs: {', '.join(f'{x:.1f}' for x in fps_pipe)})")
    print(f"ratio: {b / a:.2f}x (target >= 1.3x)")
    return 0 if b / a >= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
