"""What sample collection costs the station: CPU per frame with ``[collect]`` on against off.

The daemon runs the demo bundle (real int8 inference, 1 interpreter thread) on 640x480 camera
frames (the resize to the model input is part of every frame), snapshots on in both arms. The
"on" arm switches on both rules at settings that make every frame a candidate: ``near`` with
the widest band (so the decision runs its full path on every frame and the quota, at its
defaults, is what stops it) and ``random`` at a 1 % share. Rounds alternate which arm runs
first; the figure is the median CPU time per frame (``time.process_time``, all threads).

    python bench/collect.py [--frames 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import KeptOpen  # noqa: E402 - shared with the other benches
from daemon_cost import Prepared  # noqa: E402 - the file-like source of prepared frames
from real_data import cpu_name  # noqa: E402


class Camera(Prepared):
    """``count`` 640x480 frames (a still of the demo seam, shifted a little each frame)."""

    name = "640x480 frames"

    def read(self):
        from pi_inspect.edge.view import Frame

        frame = super().read()
        if frame is None:
            return None
        return Frame(frame.index, frame.timestamp, np.roll(self._image, frame.index % 64, axis=1))


def arm(clf, image: np.ndarray, frames: int, collect: dict, state: Path) -> tuple[int, float, int]:
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon

    snaps = state / "snaps"
    settings = {
        "source": {"kind": "file", "uri": os.devnull},
        "gpio": {"enabled": False},
        "snapshots": {"dir": str(snaps)},
        "stdout": {"enabled": False},
        "pipeline": {"drop": "block", "queue": 4},
        "collect": collect,
    }
    daemon = Daemon(
        parse_config(settings), outputs=[], classifier_loader=lambda _m: KeptOpen(clf),
        source_factory=lambda: Camera(image, frames),
    )  # fmt: skip
    c0 = time.process_time()
    summary = daemon.run(threading.Event())
    cpu = time.process_time() - c0
    kept = len(list(snaps.glob("*.json"))) if snaps.exists() else 0
    for path in snaps.glob("*") if snaps.exists() else []:
        path.unlink()
    return summary.frames, cpu, kept


def main() -> int:
    from pi_inspect.edge.bundle import default_bundle_dir
    from pi_inspect.edge.runtime import load_classifier
    from pi_inspect.edge.synth.still import render_still

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    clf = load_classifier(default_bundle_dir(), num_threads=1)
    image = render_still(0, 0, (640, 480)).image
    arms = {
        "off": {},
        "on": {"near": {"enabled": True, "band": 0.5}, "random": {"enabled": True, "share": 0.01}},
    }
    us: dict[str, list[float]] = {name: [] for name in arms}
    kept: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pi-inspect-collect-") as tmp:
        for r in range(args.rounds):
            for name in list(arms) if r % 2 == 0 else list(arms)[::-1]:
                n, cpu_s, k = arm(clf, image, args.frames, arms[name], Path(tmp))
                us[name].append(cpu_s * 1e6 / n)
                kept[name] = k
    off, on = statistics.median(us["off"]), statistics.median(us["on"])
    print(f"CPU: {cpu_name()}; {args.frames} frames x {args.rounds} rounds per arm, demo bundle "
          f"int8 1 thread, 640x480 frames; load {os.getloadavg()[0]:.1f}")
    for name in arms:
        print(f"  collect {name:3}: {statistics.median(us[name]):8.1f} us CPU/frame "
              f"({', '.join(f'{x:.0f}' for x in us[name])}); samples kept in the last round: {kept[name]}")
    print(f"  collection costs {100 * (on - off) / off:+.2f} % CPU per frame (bar: under 2 %)")
    clf.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
