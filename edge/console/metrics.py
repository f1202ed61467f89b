"""Prometheus metrics at ``/metrics``: one registry per console, filled at scrape time.

A custom collector reads what the console already keeps (the latest stats and state, events per
label, faults), so the inference loop does no metrics work at all.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pi_inspect.edge.console.output import ConsoleOutput
from pi_inspect.edge.events import Stats

VERDICTS = ("starting", "ok", "defect", "fault")


class ConsoleCollector(Collector):
    def __init__(self, console: ConsoleOutput) -> None:
        self._console = console

    def collect(self) -> Iterator[Metric]:
        """Every metric with a ``station`` label (``default`` for a device of one)."""
        boards = self._console.counters()
        spool_depth = self._console.spool_depth()
        events = CounterMetricFamily(
            "pi_inspect_defect_events", "Defects raised since start, per label",
            labels=["station", "label"],
        )  # fmt: skip
        faults = CounterMetricFamily(
            "pi_inspect_faults", "Faults that began since start", labels=["station"]
        )
        verdict = GaugeMetricFamily(
            "pi_inspect_verdict", "1 for the current verdict", labels=["station", "verdict"]
        )
        fault = GaugeMetricFamily("pi_inspect_fault", "1 while a fault lasts", labels=["station"])
        lamps = GaugeMetricFamily(
            "pi_inspect_lamp", "1 while the LED is on", labels=["station", "lamp"]
        )
        info = InfoMetricFamily("pi_inspect_model", "The model running now", labels=["station"])
        for name, (state, _stats, counts, n_faults) in boards.items():
            for label, n in sorted(counts.items()):
                events.add_metric([name, label], n)
            faults.add_metric([name], n_faults)
            for word in VERDICTS:
                verdict.add_metric([name, word], float(state is not None and state.verdict == word))
            if state is None:
                continue
            fault.add_metric([name], float(bool(state.fault)))
            for lamp, on in sorted(state.lamps.items()):
                lamps.add_metric([name, lamp], float(on))
            if state.model is not None:
                model = state.model
                info.add_metric(
                    [name], {"name": model.name, "version": model.version, "sha256": model.sha256}
                )
        yield from (events, faults, verdict, fault, lamps, info)
        yield GaugeMetricFamily(
            "pi_inspect_console_viewers", "Live viewers now", self._console.frame_tap.watching()
        )
        if spool_depth is not None:
            yield GaugeMetricFamily(
                "pi_inspect_spool_depth", "Events waiting in the MQTT spool", spool_depth
            )
        yield from _station_stats({name: b[1] for name, b in boards.items() if b[1] is not None})


_GAUGES = {
    "pi_inspect_fps": ("Frames inferred per second", lambda s: s.fps),
    "pi_inspect_latency_p50_seconds": ("Median latency", lambda s: s.latency_p50_ms / 1000.0),
    "pi_inspect_latency_p95_seconds": (
        "95th percentile latency", lambda s: s.latency_p95_ms / 1000.0,
    ),
    "pi_inspect_camera_online": ("1 while the camera delivers", lambda s: float(s.camera_online)),
    "pi_inspect_uptime_seconds": ("Seconds since the daemon started", lambda s: s.uptime_s),
    "pi_inspect_cpu_temperature_celsius": ("SoC temperature", lambda s: s.cpu_temp_c),
}  # fmt: skip


def _station_stats(stats: dict[str, Stats]) -> Iterator[Metric]:
    """The stats line's numbers, one sample per station."""
    if not stats:
        return
    for metric, (doc, read) in _GAUGES.items():
        family = GaugeMetricFamily(metric, doc, labels=["station"])
        for name, line in stats.items():
            value = read(line)
            if value is not None:
                family.add_metric([name], float(value))
        yield family
    for metric, doc, read in (
        ("pi_inspect_frames", "Frames inferred", lambda s: s.frames),
        ("pi_inspect_dropped_frames", "Frames dropped", lambda s: s.dropped_frames),
    ):
        family = CounterMetricFamily(metric, doc, labels=["station"])
        for name, line in stats.items():
            family.add_metric([name], read(line))
        yield family
    yield from _model_cost({name: line.extra.get("model_invoke_ms") for name, line in stats.items()})


def _model_cost(costs: dict[str, object]) -> Iterator[Metric]:
    """Each bundle's invoke time while two run on one frame (``model``, ``anomaly``), per
    station: one family per quantile, every station's samples in it."""
    costs = {name: cost for name, cost in costs.items() if isinstance(cost, dict) and cost}
    if not costs:
        return
    for q in ("p50", "p95"):
        family = GaugeMetricFamily(
            f"pi_inspect_model_invoke_{q}_seconds",
            f"Invoke time of each model, {q}",
            labels=["station", "model"],
        )
        for station, cost in costs.items():
            for part, values in sorted(cost.items()):  # type: ignore[union-attr]
                if isinstance(values, dict) and isinstance(values.get(q), (int, float)):
                    family.add_metric([station, str(part)], float(values[q]) / 1000.0)
        yield family


def make_registry(console: ConsoleOutput) -> CollectorRegistry:
    """A registry of this console's own (never the process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(console))
    return registry
