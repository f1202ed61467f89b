"""Start-up time, imports and memory of the edge daemon, measured in a fresh child process.

Prints: seconds from launching the child to its first inference (interpreter start, imports,
bundle verification and load, source open included), whether ``tensorflow`` was ever imported,
RSS after warm-up and RSS growth over ``--frames`` frames (default 20 000) of a looping video.

    python bench/startup.py [--bundle DIR] [--frames 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, threading
t_import = __import__("time").monotonic()
from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

video, bundle, frames, warm = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
stop = threading.Event()
marks = {}

class Probe:
    n = 0
    def publish_result(self, result):
        self.n += 1
        if self.n == 1:
            print("FIRST", flush=True)
        if self.n == warm:
            marks["rss_warm_kb"] = rss_kb()
        if self.n % 5000 == 0:
            marks.setdefault("rss_trace_kb", []).append((self.n, rss_kb()))
        if self.n >= frames:
            marks["rss_end_kb"] = rss_kb()
            stop.set()
    events = 0
    def publish_event(self, e):
        self.events += e.kind == "start"
    def publish_stats(self, s): pass
    def publish_state(self, s): pass
    def publish_snapshot(self, j, e): pass
    def close(self): pass

settings = {
    "source": {"kind": "file", "uri": video, "loop": True},
    "gpio": {"enabled": False},
    "snapshots": {"enabled": False},
    "stdout": {"enabled": False},
    "pipeline": {"drop": "block"},
}
if bundle:
    settings["model"] = {"bundle": bundle}
probe = Probe()
summary = Daemon(parse_config(settings), outputs=[probe]).run(stop)
marks.update(frames=probe.n, fps=summary.fps, events=probe.events, tensorflow="tensorflow" in sys.modules,
             keras="keras" in sys.modules)
print("RESULT " + json.dumps(marks), flush=True)
"""


def make_video(path: Path, frames: int = 60, size: tuple[int, int] = (320, 240)) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, size)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="", help="bundle dir (default: built-in demo bundle)")
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--warm", type=int, default=500, help="frames before the first RSS reading")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp) / "loop.avi")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(video),
                args.bundle,
                str(args.frames),
                str(args.warm),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        first = None
        result = None
        for line in proc.stdout:
            if line.startswith("FIRST") and first is None:
                first = time.monotonic() - t0
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        proc.wait()
    if proc.returncode != 0 or result is None or first is None:
        print(f"child failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    growth = (result["rss_end_kb"] - result["rss_warm_kb"]) / 1024
    print(f"start to first inference: {first:.2f} s (target <= 1.5 s)")
    print(f"tensorflow imported: {result['tensorflow']}, keras imported: {result['keras']}")
    print(f"RSS after {args.warm} frames: {result['rss_warm_kb'] / 1024:.1f} MB (target <= 150 MB)")
    print(
        f"RSS growth over frames {args.warm}..{result['frames']}: {growth:+.2f} MB (target <= 2 MB)"
    )
    trace = ", ".join(f"{n}: {kb / 1024:.1f}" for n, kb in result.get("rss_trace_kb", []))
    print(f"RSS trace (frame: MB): {trace}")
    print(f"defect events during the run: {result['events']}")
    print(f"throughput: {result['fps']:.0f} FPS")
    ok = (
        first <= 1.5
        and not result["tensorflow"]
        and result["rss_end_kb"] / 1024 <= 150
        and growth <= 2
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
