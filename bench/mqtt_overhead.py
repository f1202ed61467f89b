"""Daemon throughput with and without the MQTT output, side by side in one run.

A real mosquitto on a free loopback port; the real daemon on the same video in both arms; the
MQTT arm publishes per-frame results (``--result-hz``), stats, state, snapshots off, and a
defect event every few frames (far more than a real line). Without ``--bundle`` the model is a
stand-in that costs almost nothing, so decoding and the outputs are nearly all of the frame
time: the worst case for the MQTT share. Rounds alternate which arm runs first; the median of the per-round ratios is printed, for
throughput and for this process's CPU time per frame (steadier on a shared machine).

    python bench/mqtt_overhead.py [--bundle DIR] [--frames 600] [--rounds 9] [--result-hz 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_arm import KeptOpen  # noqa: E402 - shared with the other daemon benches

LABELS = ("good", "error", "break", "length")


class StandInClassifier:
    """Reads the 'defect' from the frame's red channel: almost free, so the output dominates."""

    labels = LABELS
    task = "multilabel"
    input_size = (32, 24)
    thresholds = dict.fromkeys(LABELS, 0.5)
    alarms = {"error": "above", "break": "above", "length": "below"}
    has_heatmaps = False

    def __init__(self) -> None:
        from pi_inspect.edge.events import ModelInfo

        self.info = ModelInfo("stand-in", "1", "0" * 64)

    def predict(self, rgb: np.ndarray, with_features: bool = True):
        red = float(rgb[..., 0].mean()) / 255.0
        scores = np.array([1.0 - red, red, 0.0, 1.0], np.float32)
        return type("Prediction", (), {"scores": scores, "features": None})()

    def heatmap(self, prediction, label: str) -> np.ndarray:
        raise ValueError("no heat maps")

    def close(self) -> None:
        pass


def make_video(path: Path, frames: int) -> Path:
    """640x480 MJPG; every 10th..15th frame of 20 is red (a defect start and end every 20)."""
    import cv2

    rng = np.random.default_rng(0)
    base = rng.integers(0, 120, (480, 640, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for i in range(frames):
        frame = np.roll(base, i * 3, axis=1)
        if 10 <= i % 20 < 16:
            frame = frame.copy()
            frame[..., 2] = 255
        writer.write(frame)
    writer.release()
    return path


def make_seam_video(path: Path, frames: int) -> Path:
    """A synthetic seam video (pi_inspect.edge.synth) so a real model sees real defects (seed 3: an
    error, a break and a 4 mm segment every 200 frames)."""
    from pi_inspect.edge.synth import render_video

    render_video(path, frames=frames, seed=3, size=(320, 240), fps=15.0)
    return path


def start_broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


class CountingOutput:
    """Forwards to the MQTT output, counts defect events and times every ``publish_*`` call:
    the MQTT output's direct cost on the inference thread (its other threads show in CPU)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.events = 0
        self.calls_ns = 0
        self.by_method: dict[str, list[int]] = {}  # name -> [calls, ns] over all runs

    def _count(self, name: str, ns: int) -> None:
        self.calls_ns += ns
        entry = self.by_method.setdefault(name, [0, 0])
        entry[0] += 1
        entry[1] += ns

    def publish_event(self, event) -> None:
        self.events += 1
        t0 = time.perf_counter_ns()
        self.inner.publish_event(event)
        self._count("publish_event", time.perf_counter_ns() - t0)

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)
        if not name.startswith("publish_"):
            return method

        def timed(*args):
            t0 = time.perf_counter_ns()
            method(*args)
            self._count(name, time.perf_counter_ns() - t0)

        return timed


def run_daemon(video: Path, classifier, outputs: list) -> tuple[int, float]:
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon

    settings = {
        "source": {"kind": "file", "uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"enabled": False},
        "stdout": {"enabled": False},
            "output": {"stats_interval_s": 1.0},
        "pipeline": {"drop": "block", "queue": 4},
    }
    daemon = Daemon(
        parse_config(settings), outputs=outputs, classifier_loader=lambda _m: classifier
    )
    cpu0 = time.process_time()  # every thread of this process: daemon, paho, sender
    summary = daemon.run(threading.Event())
    return summary.frames, summary.elapsed_s, time.process_time() - cpu0


def mqtt_output(port: int, state_dir: Path, result_hz: float):
    from pi_inspect.edge.mqtt import make_output
    from pi_inspect.edge.mqtt.config import MqttConfig

    config = MqttConfig(
        enabled=True,
        host="127.0.0.1",
        port=port,
        result={"enabled": True, "max_rate_hz": result_hz},
    )
    out = make_output(config, state_dir, "bench")
    deadline = time.monotonic() + 10
    while not out.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    return out


def mqtt_threads_cpu_s() -> float:
    """CPU seconds used so far by the MQTT output's own threads (sender, commands, paho)."""
    ticks = 0
    for t in threading.enumerate():
        if t.native_id and t.name.startswith(("mqtt-", "paho-mqtt")):
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                continue
            utime, stime = fields.split()[11:13]
            ticks += int(utime) + int(stime)
    return ticks / os.sysconf("SC_CLK_TCK")


def spread(ratios: list[float]) -> str:
    """Min, quartiles and max of sorted per-round ratios: how far to trust the median."""
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return f"min {ratios[0]:.3f}, q1 {q1:.3f}, q3 {q3:.3f}, max {ratios[-1]:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bundle", default=None, help="a real model bundle instead of the stand-in"
    )
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--result-hz",
        type=float,
        default=2.0,
        help="per-frame results rate limit (default as shipped)",
    )
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        print("mosquitto is not installed", file=sys.stderr)
        return 2
    if args.bundle:
        from pi_inspect.edge.runtime import load_classifier

        classifier = KeptOpen(load_classifier(args.bundle))
    else:
        classifier = StandInClassifier()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        if args.bundle:
            video = make_seam_video(tmp_dir / "seam.mp4", args.frames)
        else:
            video = make_video(tmp_dir / "bench.avi", args.frames)
        broker, port = start_broker(tmp_dir)
        try:
            run_daemon(video, classifier, [])  # warm-up: caches, imports, decoder
            runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
            inline_share: list[float] = []  # publish_* time / run time, inference thread
            cpu_share: list[float] = []  # MQTT threads + publish_* CPU / process CPU
            for r in range(args.rounds):
                out = CountingOutput(mqtt_output(port, tmp_dir / f"state{r}", args.result_hz))
                arms = [("without", []), ("with", [out])]
                for name, outputs in arms if r % 2 == 0 else arms[::-1]:
                    own0 = mqtt_threads_cpu_s()
                    n, s, cpu = run_daemon(video, classifier, outputs)
                    runs[name].append((n / s, cpu / n))  # FPS, CPU seconds per frame
                    if outputs:
                        inline_share.append(out.calls_ns / 1e9 / s)
                        # what MQTT itself burns: its threads plus its calls on the inference thread
                        cpu_share.append((mqtt_threads_cpu_s() - own0 + out.calls_ns / 1e9) / cpu)
                        out.calls_ns = 0
                left = out.inner.spool_depth  # before close: what was still unacknowledged
                out.close()
        finally:
            broker.terminate()
            broker.wait()
    fps_without = [f for f, _ in runs["without"]]
    fps_with = [f for f, _ in runs["with"]]
    # each round's two runs are back to back: their ratio cancels the shared machine's drift
    fps_ratios = sorted(w / o for w, o in zip(fps_with, fps_without, strict=True))
    cpu_ratios = sorted(w / o for (_, w), (_, o) in zip(runs["with"], runs["without"], strict=True))
    fps_ratio, cpu_ratio = statistics.median(fps_ratios), statistics.median(cpu_ratios)
    model = args.bundle or "stand-in model (worst case: the outputs are most of the work)"
    kind = "320x240 synthetic seam mp4" if args.bundle else "640x480 MJPG"
    print(f"frames per run: {n} ({kind}), rounds: {args.rounds}, model: {model}")
    print(f"defect events per run: {out.events}, results published: <= {args.result_hz:g} Hz")
    print(f"without MQTT: FPS {', '.join(f'{x:.1f}' for x in fps_without)}")
    print(f"with MQTT:    FPS {', '.join(f'{x:.1f}' for x in fps_with)}")
    print(f"events unacknowledged when the last run ended: {left}")
    print(f"throughput ratio with/without (median of paired rounds): {fps_ratio:.3f}")
    print(f"CPU per frame ratio with/without (median of paired rounds): {cpu_ratio:.3f}")
    print(f"  per-round FPS ratios: {spread(fps_ratios)}")
    print(f"  per-round CPU ratios: {spread(cpu_ratios)}")
    print(
        "time inside MQTT publish_* on the inference thread: "
        f"{100 * statistics.median(inline_share):.2f}% of the run (median)"
    )
    for name, (calls, ns) in sorted(out.by_method.items()):
        print(f"  {name}: {calls} calls in the last round, {ns / calls / 1e3:.1f} us per call")
    ratio_cost = max(1.0 - fps_ratio, cpu_ratio - 1.0)
    print(f"MQTT cost from the paired ratios: {100 * ratio_cost:.1f}% (the worse of the two; "
          "noisy: see the per-round spread)")
    share = statistics.median(cpu_share)
    print(
        f"MQTT cost, measured directly: {100 * share:.2f}% of the process's CPU "
        f"(its threads + its calls on the inference thread; rounds {100 * min(cpu_share):.2f}-"
        f"{100 * max(cpu_share):.2f}%; target < 5%)"
    )
    return 0 if share < 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
