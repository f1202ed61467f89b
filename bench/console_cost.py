"""Daemon throughput without the console, with it and nobody watching, and with one live viewer.

The real daemon on the same 640x480 MJPG seam video in every arm, the demo model (or ``--bundle``),
the console enabled through its config section on a free loopback port. The viewer is a
separate process that asks for ``/api/live.jpg`` at the page's rate (``--viewer-fps``), as the
browser does, so its own CPU is not counted; the console's JPEG encoding is (it runs in this
process's HTTP thread). Rounds rotate which arm runs first; the median of the per-round ratios is
printed for FPS and for this process's CPU time per frame.

    python bench/console_cost.py [--bundle DIR] [--frames 1500] [--rounds 7] [--viewer-fps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import KeptOpen  # noqa: E402
from mqtt_overhead import spread  # noqa: E402

VIEWER = """
import sys, time, urllib.request
url, period = sys.argv[1], 1.0 / float(sys.argv[2])
seq, got = 0, 0
while True:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"{url}/api/live.jpg?viewer=bench&after={seq}", timeout=5) as r:
            seq = int(r.headers.get("X-Frame-Seq") or seq)
            got += len(r.read()) > 0
    except OSError:
        pass
    print(got, flush=True)
    time.sleep(max(0.0, period - (time.monotonic() - t0)))
"""


def make_station_video(path: Path, frames: int) -> Path:
    """640x480 MJPG (what a USB camera sends) of a synthetic seam (pi_inspect.edge.synth, seed 3): real
    texture, so the live view's JPEGs are the size a station's would be. 300 rendered frames,
    repeated up to ``frames``."""
    import cv2

    from pi_inspect.edge.synth import render_video

    seam = path.with_name("seam.mp4")
    render_video(seam, frames=min(frames, 300), seed=3, size=(640, 480), fps=15.0)
    cap = cv2.VideoCapture(str(seam))
    rendered = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        rendered.append(image)
    cap.release()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    for i in range(frames):
        writer.write(rendered[i % len(rendered)])
    writer.release()
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_daemon(video: Path, classifier, state_dir: Path, console: str, viewer_fps: float):
    """One run; ``console`` is ``off``, ``idle`` (enabled, nobody watching) or ``viewer``."""
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon

    port = free_port()
    settings = {
        "state_dir": str(state_dir),
        "source": {"kind": "file", "uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"enabled": False},
        "stdout": {"enabled": False},
            "output": {"stats_interval_s": 1.0},
        "pipeline": {"drop": "block", "queue": 4},
        "console": {"enabled": console != "off", "port": port},
    }
    daemon = Daemon(parse_config(settings), classifier_loader=lambda _m: classifier)
    viewer = None
    started = threading.Event()
    if console == "viewer":
        viewer = subprocess.Popen(
            [sys.executable, "-c", VIEWER, f"http://127.0.0.1:{port}", str(viewer_fps)],
            stdout=subprocess.PIPE,
            text=True,
        )

        def watch() -> None:  # the run is timed from the viewer's first frame on
            for line in viewer.stdout:
                if int(line) > 0:
                    started.set()

        threading.Thread(target=watch, daemon=True).start()
    result: dict = {}

    def run() -> None:
        result["summary"] = daemon.run(threading.Event())

    thread = threading.Thread(target=run)
    cpu0 = time.process_time()
    thread.start()
    if viewer is not None:
        started.wait(30)
    thread.join()
    cpu = time.process_time() - cpu0
    if viewer is not None:
        viewer.kill()
        viewer.wait()
    summary = result["summary"]
    return summary.frames, summary.elapsed_s, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default=None, help="default: the built-in demo bundle")
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--viewer-fps", type=float, default=5.0)
    args = parser.parse_args()
    from pi_inspect.edge.runtime import load_classifier

    classifier = KeptOpen(load_classifier(args.bundle))
    arms = ["off", "idle", "viewer"]
    runs: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        video = make_station_video(tmp_dir / "bench.avi", args.frames)
        run_daemon(video, classifier, tmp_dir / "warm", "viewer", args.viewer_fps)  # warm-up
        for r in range(args.rounds):
            order = arms[r % 3 :] + arms[: r % 3]
            for arm in order:
                frames, elapsed, cpu = run_daemon(
                    video, classifier, tmp_dir / f"s{r}{arm}", arm, args.viewer_fps
                )
                runs[arm].append((frames / elapsed, cpu / frames))
                print(
                    f"round {r} {arm:>6}: {frames / elapsed:7.1f} FPS, {cpu / frames * 1e3:.3f} ms CPU/frame"
                )
    print(f"\n{args.frames} frames x {args.rounds} rounds, viewer at {args.viewer_fps:g} FPS")
    for arm in ("idle", "viewer"):
        fps = sorted(b[0] / a[0] for a, b in zip(runs["off"], runs[arm], strict=True))
        cpu = sorted(b[1] / a[1] for a, b in zip(runs["off"], runs[arm], strict=True))
        fps_m, cpu_m = statistics.median(fps), statistics.median(cpu)
        cost = max(1.0 - fps_m, cpu_m - 1.0)
        print(f"console {arm:>6} / off: FPS ratio {fps_m:.3f} ({spread(fps)})")
        print(f"{'':14} CPU/frame ratio {cpu_m:.3f} ({spread(cpu)}) -> cost {cost * 100:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
