"""The sample store on a small disk for a long time: never beyond its limits, never a crash.

A 20 MB tmpfs (root) holds the station's state; the daemon runs the demo bundle on 640x480
frames from a live-like source (paced at ``--fps``) with every collection rule switched on at
quotas far above the defaults, so samples arrive as fast as the store will take them, for
``--minutes``. Every second the script measures the store's bytes, files and the disk's free
space, and at the end checks: the store never exceeded ``snapshots.max_bytes`` /
``max_count``, the disk never filled, the daemon never stopped, and every fault it raised
has a start and an end line.

    sudo python bench/store_limits.py [--minutes 10] [--fps 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collect import Camera  # noqa: E402 - the 640x480 source of the collection bench
from daemon_arm import KeptOpen  # noqa: E402


class Paced(Camera):
    """Camera frames at a fixed rate for a fixed time, like a live camera."""

    live = True

    def __init__(self, image: np.ndarray, fps: float, seconds: float) -> None:
        super().__init__(image, int(fps * seconds))
        self._period = 1.0 / fps

    def read(self):
        time.sleep(self._period)
        return super().read()


def main() -> int:
    from pi_inspect.edge.bundle import default_bundle_dir
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon
    from pi_inspect.edge.runtime import load_classifier
    from pi_inspect.edge.synth.still import render_still

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=15.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root to mount a tmpfs", file=sys.stderr)
        return 2
    mount = Path(tempfile.mkdtemp(prefix="pi-inspect-store-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        limits = {"max_bytes": 12_000_000, "max_count": 400, "min_free_bytes": 2_000_000}
        quota = {"per_minute": 600, "per_hour": 36_000, "per_day": 100_000}
        config = parse_config({
            "state_dir": str(mount),
            "source": {"kind": "file", "uri": os.devnull},
            "gpio": {"enabled": False},
            "stdout": {"enabled": False},
            "snapshots": {"dir": "snapshots", **limits},
            "collect": {"near": {"enabled": True, "band": 0.5, **quota},
                        "random": {"enabled": True, "share": 0.5, **quota}},
        })  # fmt: skip
        clf = load_classifier(default_bundle_dir(), num_threads=1)
        image = render_still(0, 0, (640, 480)).image
        seconds = args.minutes * 60
        daemon = Daemon(
            config, outputs=[], classifier_loader=lambda _m: KeptOpen(clf),
            source_factory=lambda: Paced(image, args.fps, seconds),
        )  # fmt: skip
        worst = {"bytes": 0, "files": 0, "min_free": 1 << 62}
        done = threading.Event()

        def measure() -> None:
            store = mount / "snapshots"
            while not done.wait(1.0):
                sizes, samples = 0, 0
                for entry in os.scandir(store) if store.exists() else ():
                    try:  # the store prunes while we look: a file may be gone already
                        sizes += entry.stat().st_size
                    except FileNotFoundError:
                        continue
                    samples += entry.name.endswith(".json")
                worst["bytes"] = max(worst["bytes"], sizes)
                worst["files"] = max(worst["files"], samples)
                worst["min_free"] = min(worst["min_free"], shutil.disk_usage(mount).free)

        watcher = threading.Thread(target=measure, daemon=True)
        watcher.start()
        started = time.monotonic()
        summary = daemon.run(threading.Event())
        done.set()
        watcher.join()
        took = time.monotonic() - started
        ok = (worst["bytes"] <= limits["max_bytes"] and worst["files"] <= limits["max_count"]
              and worst["min_free"] > 0)  # fmt: skip
        print(f"{took / 60:.1f} min, {summary.frames} frames at {args.fps:g} fps on a 20 MB tmpfs; "
              f"store limits: {limits}")
        print(f"  most bytes in the store: {worst['bytes']}, most samples: {worst['files']}, "
              f"least free on the disk: {worst['min_free']}")
        print(f"  faults: {list(summary.faults) or 'none'}")
        print(f"  within its limits the whole time: {'yes' if ok else 'NO'}")
        clf.close()
        return 0 if ok else 1
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


if __name__ == "__main__":
    sys.exit(main())
