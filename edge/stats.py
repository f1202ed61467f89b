"""Moving-window throughput and latency: fps and p50/p95 over the last N frames, fixed memory."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from pi_inspect.edge.events import Stats
from pi_inspect.edge.health import Health

CPU_TEMP_PATH = Path("/sys/class/thermal/thermal_zone0/temp")


def read_cpu_temp_c(path: Path = CPU_TEMP_PATH) -> float | None:
    """The SoC temperature in degrees Celsius where the kernel exposes it, else None."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method).

    Plain Python on at most a window of values: ``np.percentile`` pulls in numpy.ma lazily on
    first use, a one-off 2 MB jump in the daemon's memory at its first stats line.
    """
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class StatsWindow:
    """Records inference latency and completion time per frame in bounded deques."""

    def __init__(self, window: int = 200) -> None:
        if window < 2:
            raise ValueError("window must be >= 2")
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._done_at: deque[float] = deque(maxlen=window)
        self.frames = 0

    def record(self, latency_ms: float, done_at: float) -> None:
        """One inferred frame: its latency and when (monotonic seconds) it finished."""
        self._latency_ms.append(float(latency_ms))
        self._done_at.append(float(done_at))
        self.frames += 1

    @property
    def fps(self) -> float:
        if len(self._done_at) < 2:
            return 0.0
        span = self._done_at[-1] - self._done_at[0]
        return (len(self._done_at) - 1) / span if span > 0 else 0.0

    def latency_percentiles(self) -> tuple[float, float]:
        if not self._latency_ms:
            return 0.0, 0.0
        values = sorted(self._latency_ms)
        return percentile(values, 50), percentile(values, 95)

    def snapshot(
        self,
        *,
        dropped: int,
        uptime_s: float,
        camera_online: bool,
        cpu_temp_c: float | None = None,
        **extra,
    ) -> Stats:
        p50, p95 = self.latency_percentiles()
        return Stats(
            fps=round(self.fps, 2),
            latency_p50_ms=round(p50, 2),
            latency_p95_ms=round(p95, 2),
            frames=self.frames,
            dropped_frames=dropped,
            uptime_s=round(uptime_s, 1),
            camera_online=camera_online,
            cpu_temp_c=cpu_temp_c,
            extra=dict(extra),
        )


class AlarmRate:
    """The share of inspected frames on which any label alarmed, over the last ``window``
    frames: the number a fleet compares stations and models by. A part the loop polls."""

    def __init__(self, window: int = 500) -> None:
        self._frames: deque[bool] = deque(maxlen=window)

    def observe(self, alarmed: bool) -> None:
        self._frames.append(alarmed)  # deque.append is atomic: no lock on the frame path

    def health(self) -> Health:
        frames = list(self._frames)
        if not frames:
            return Health()
        return Health(stats={"alarm_rate": round(sum(frames) / len(frames), 4)})
