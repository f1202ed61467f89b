"""Pipelined daemon vs a naive sequential read -> resize -> invoke loop, side by side.

Same bundle, same interpreter thread count (the daemon's default unless ``--threads``), same
camera-like video (a rendered synthetic seam, at 320x240 and 640x480), every frame inferred in
both (the daemon's file sources apply back-pressure, they do not drop). Rounds alternate which
arm runs first so background load hits both alike; the ratio of the medians and the median of
the per-round ratios are printed (target >= 1.3x).

    python bench/throughput.py [--bundle DIR] [--frames 600] [--rounds 5] [--sizes 320x240,640x480]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import run_daemon  # noqa: E402 - the daemon arm bench/camera.py runs too


def make_video(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """A synthetic seam scrolling past, like a camera beside the machine (pi_inspect.edge.synth)."""
    from pi_inspect.edge.synth import render_video

    render_video(path, frames=frames, seed=5, size=size, fps=15.0)
    return path


def naive(video: Path, clf) -> tuple[int, float]:
    """read -> prepare -> predict, one after the other."""
    import cv2

    from pi_inspect.edge.preprocess import prepare

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
    return n, elapsed


def pipelined(video: Path, clf) -> tuple[int, float]:
    """The daemon itself on the same file (snapshots, GPIO and stdout off)."""
    summary = run_daemon(video, clf, queue=4)
    return summary.frames, summary.elapsed_s


def compare(video: Path, clf, rounds: int) -> tuple[list[float], list[float]] | None:
    fps_naive, fps_pipe = [], []
    for r in range(rounds):
        arms = [("naive", naive), ("pipe", pipelined)]
        if r % 2:
            arms.reverse()
        counts = {}
        for name, arm in arms:
            n, s = arm(video, clf)
            counts[name] = n
            (fps_naive if name == "naive" else fps_pipe).append(n / s)
        if counts["naive"] != counts["pipe"]:
            print(f"frame counts differ: {counts}", file=sys.stderr)
            return None
    return fps_naive, fps_pipe


def main() -> int:
    from pi_inspect.edge.daemon import default_num_threads
    from pi_inspect.edge.runtime import load_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="320x240,640x480")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (both)")
    args = parser.parse_args()
    threads = args.threads or default_num_threads()
    clf = load_classifier(args.bundle, num_threads=threads)  # one interpreter for both arms
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.sizes.split(","):
            w, h = (int(v) for v in text.split("x"))
            video = make_video(Path(tmp) / f"seam_{w}x{h}.mp4", args.frames, (w, h))
            naive(video, clf)  # warm-up: page cache, interpreter arenas
            result = compare(video, clf, args.rounds)
            if result is None:
                return 1
            fps_naive, fps_pipe = result
            a, b = statistics.median(fps_naive), statistics.median(fps_pipe)
            print(
                f"{w}x{h}: {args.frames} frames x {args.rounds} rounds, "
                f"model {clf.input_size[0]}x{clf.input_size[1]}, {threads} interpreter thread(s)"
            )
            print(f"  naive sequential: {a:7.1f} FPS  ({', '.join(f'{x:.0f}' for x in fps_naive)})")
            print(f"  daemon pipeline:  {b:7.1f} FPS  ({', '.join(f'{x:.0f}' for x in fps_pipe)})")
            paired = statistics.median(p / n for p, n in zip(fps_pipe, fps_naive, strict=True))
            print(f"  ratio: {b / a:.2f}x of medians, {paired:.2f}x median of per-round ratios")
            ok = ok and b / a >= 1.3
    clf.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
