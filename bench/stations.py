"""Two 640x480 MJPEG stations in one daemon against two daemons side by side.

Each arm runs real ``pi-inspect run`` processes on the same MJPG AVI (the rendered seam video at
640x480, 30 FPS: what a USB camera in MJPG mode sends), with the built-in demo bundle, stdout
JSON lines as the only output and snapshots off:

- ``one daemon``: one process, ``[stations.a]`` and ``[stations.b]`` (interpreter threads
  budgeted by the daemon: ``max(1, (cores - 2) // 2)`` each);
- ``two daemons``: two processes of one station each (each with ``max(1, cores - 1)``
  threads, the single-station default, unless ``--threads`` sets both).

Two paces: ``camera`` (each source at its own 30 FPS, as cameras deliver) gives the CPU time
per frame at a fixed load; ``flat out`` (each source as fast as it decodes) gives the most frames
per second the machine gets through. The arms alternate, each leading in turn; figures are
measured after a warm-up, from the stats lines (one a second) and /proc CPU times.

    python bench/stations.py [--seconds 20] [--warmup 6] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from camera import mjpg_video  # noqa: E402 - shared with the other benches
from real_data import cpu_name  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def station_toml(name: str, video: Path, realtime: bool) -> str:
    return (
        f"[stations.{name}.source]\nuri = \"{video}\"\nloop = true\nrealtime = {str(realtime).lower()}\n"
        f"[stations.{name}.snapshots]\nenabled = false\n"
    )


def write_configs(root: Path, video: Path, realtime: bool, threads: int | None) -> dict[str, list[Path]]:
    """The config files of each arm."""
    common = "[gpio]\nenabled = false\n[output]\nstats_interval_s = 1.0\n[snapshots]\nenabled = false\n"
    model = f"[model]\nnum_threads = {threads}\n" if threads else ""
    one = root / "one.toml"
    one.write_text(
        f'state_dir = "{root / "state-one"}"\n{common}{model}'
        + station_toml("a", video, realtime) + station_toml("b", video, realtime)
    )
    two = []
    for name in ("a", "b"):
        path = root / f"two-{name}.toml"
        source = f'[source]\nuri = "{video}"\nloop = true\nrealtime = {str(realtime).lower()}\n'
        path.write_text(f'state_dir = "{root / f"state-{name}"}"\n{common}{model}{source}')
        two.append(path)
    return {"one daemon": [one], "two daemons": two}


class Daemon:
    """One ``pi-inspect run`` process; its stats lines as (time received, station, frames)."""

    def __init__(self, config: Path, label: str) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pi_inspect.edge.cli", "run", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.lines: list[tuple[float, str, int]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if item.get("type") == "stats":
                station = item.get("station") or "default"
                self.lines.append((time.monotonic(), f"{self.label}:{station}", int(item["frames"])))

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reader.join(timeout=5)


def frames_at(lines: list[tuple[float, str, int]], station: str, t: float) -> tuple[float, int]:
    """The last stats line of ``station`` received before ``t``: (when, frames)."""
    found = [(when, n) for when, name, n in lines if name == station and when <= t]
    if not found:
        raise RuntimeError(f"no stats line from {station} before the window: did it start?")
    return found[-1]


def run_arm(configs: list[Path], seconds: float, warmup: float) -> dict:
    daemons = [Daemon(c, c.stem) for c in configs]
    try:
        time.sleep(warmup)
        t0, cpu0 = time.monotonic(), sum(d.cpu_s() for d in daemons)
        time.sleep(seconds)
        t1, cpu1 = time.monotonic(), sum(d.cpu_s() for d in daemons)
        rss = sum(d.rss_mb() for d in daemons)
    finally:
        for d in daemons:
            d.stop()
    lines = [line for d in daemons for line in d.lines]
    stations = sorted({name for _, name, _ in lines})
    fps: dict[str, float] = {}
    frames = 0
    for station in stations:
        (a_t, a_n), (b_t, b_n) = frames_at(lines, station, t0), frames_at(lines, station, t1)
        if b_t <= a_t:
            raise RuntimeError(f"{station}: no stats line inside the window")
        fps[station] = (b_n - a_n) / (b_t - a_t)
        frames += round(fps[station] * (t1 - t0))
    if len(stations) != 2 or min(fps.values()) <= 0:
        raise RuntimeError(f"expected two inspecting stations, got {fps}")
    return {
        "fps_per_station": fps,
        "fps_total": sum(fps.values()),
        "cpu_ms_per_frame": 1000.0 * (cpu1 - cpu0) / frames,
        "cpu_cores_busy": (cpu1 - cpu0) / (t1 - t0),
        "rss_mb": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300, help="video length (looped)")
    parser.add_argument("--threads", type=int, default=None, help="model.num_threads of every station")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="pi-inspect-stations-") as tmp:
        root = Path(tmp)
        video, _truth = mjpg_video(root, args.frames, seed=5)
        for pace, realtime in (("camera (30 FPS each)", True), ("flat out", False)):
            folder = root / pace.split()[0]
            folder.mkdir()
            arms = write_configs(folder, video, realtime, args.threads)
            results[pace] = {name: [] for name in arms}
            for r in range(args.rounds):
                order = list(arms) if r % 2 == 0 else list(reversed(arms))
                for name in order:
                    got = run_arm(arms[name], args.seconds, args.warmup)
                    results[pace][name].append(got)
                    print(f"{pace:22s} {name:12s} round {r + 1}: {got['fps_total']:.1f} FPS, "
                          f"{got['cpu_ms_per_frame']:.2f} ms CPU/frame, {got['rss_mb']:.0f} MB", flush=True)  # fmt: skip
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, load {load:.2f} at start\n")
    print("| pace | arm | FPS per station | FPS total | CPU ms per frame | cores busy | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for pace, arms in results.items():
        for name, runs in arms.items():
            mean = {k: sum(run[k] for run in runs) / len(runs) for k in
                    ("fps_total", "cpu_ms_per_frame", "cpu_cores_busy", "rss_mb")}  # fmt: skip
            per = [v for run in runs for v in run["fps_per_station"].values()]
            summary[f"{pace} / {name}"] = {**mean, "fps_per_station_min": min(per), "fps_per_station_max": max(per)}
            print(f"| {pace} | {name} | {min(per):.1f}-{max(per):.1f} | {mean['fps_total']:.1f} | "
                  f"{mean['cpu_ms_per_frame']:.2f} | {mean['cpu_cores_busy']:.2f} | {mean['rss_mb']:.0f} |")  # fmt: skip
    for pace in results:
        one, two = summary[f"{pace} / one daemon"], summary[f"{pace} / two daemons"]
        print(f"{pace}: one daemon / two daemons: FPS x{one['fps_total'] / two['fps_total']:.2f}, "
              f"CPU per frame x{one['cpu_ms_per_frame'] / two['cpu_ms_per_frame']:.2f}, "
              f"memory x{one['rss_mb'] / two['rss_mb']:.2f}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({"cpu": cpu_name(), "load": load, "runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
