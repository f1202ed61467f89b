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

VERDICTS = ("starting", "ok", "defect", "fault")


class ConsoleCollector(Collector):
    def __init__(self, console: ConsoleOutput) -> None:
        self._console = console

    def collect(self) -> Iterator[Metric]:
        state, stats, counts, faults, spool_depth = self._console.counters()
        events = CounterMetricFamily(
            "pi_inspect_defect_events", "Defects raised since start, per label", labels=["label"]
        )
        for label, n in sorted(counts.items()):
            events.add_metric([label], n)
        yield events
        yield CounterMetricFamily("pi_inspect_faults", "Faults that began since start", faults)
        verdict = GaugeMetricFamily(
            "pi_inspect_verdict", "1 for the current verdict", labels=["verdict"]
        )
        for name in VERDICTS:
            verdict.add_metric([name], float(state is not None and state.verdict == name))
        yield verdict
        if state is not None:
            yield GaugeMetricFamily(
                "pi_inspect_fault", "1 while a fault lasts", float(bool(state.fault))
            )
            lamps = GaugeMetricFamily("pi_inspect_lamp", "1 while the LED is on", labels=["lamp"])
            for lamp, on in sorted(state.lamps.items()):
                lamps.add_metric([lamp], float(on))
            yield lamps
            if state.model is not None:
                info = InfoMetricFamily("pi_inspect_model", "The model running now")
                info.add_metric(
                    [],
                    {
                        "name": state.model.name,
                        "version": state.model.version,
                        "sha256": state.model.sha256,
                    },
                )
                yield info
        yield GaugeMetricFamily(
            "pi_inspect_console_viewers", "Live viewers now", self._console.frame_tap.watching()
        )
        if stats is None:
            return
        gauges = {
            "pi_inspect_fps": ("Frames inferred per second", stats.fps),
            "pi_inspect_latency_p50_seconds": ("Median latency", stats.latency_p50_ms / 1000.0),
            "pi_inspect_latency_p95_seconds": (
                "95th percentile latency",
                stats.latency_p95_ms / 1000.0,
            ),
            "pi_inspect_camera_online": ("1 while the camera delivers", float(stats.camera_online)),
            "pi_inspect_uptime_seconds": ("Seconds since the daemon started", stats.uptime_s),
        }
        if spool_depth is not None:
            gauges["pi_inspect_spool_depth"] = ("Events waiting in the MQTT spool", spool_depth)
        if stats.cpu_temp_c is not None:
            gauges["pi_inspect_cpu_temperature_celsius"] = ("SoC temperature", stats.cpu_temp_c)
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, float(value))
        yield from _model_cost(stats.extra.get("model_invoke_ms"))
        yield CounterMetricFamily("pi_inspect_frames", "Frames inferred", stats.frames)
        yield CounterMetricFamily(
            "pi_inspect_dropped_frames", "Frames dropped", stats.dropped_frames
        )


def _model_cost(cost: object) -> Iterator[Metric]:
    """Each bundle's invoke time while two run on one frame (``model``, ``anomaly``)."""
    if not isinstance(cost, dict) or not cost:
        return
    for q in ("p50", "p95"):
        family = GaugeMetricFamily(
            f"pi_inspect_model_invoke_{q}_seconds",
            f"Invoke time of each model, {q}",
            labels=["model"],
        )
        for part, values in sorted(cost.items()):
            if isinstance(values, dict) and isinstance(values.get(q), (int, float)):
                family.add_metric([str(part)], float(values[q]) / 1000.0)
        yield family


def make_registry(console: ConsoleOutput) -> CollectorRegistry:
    """A registry of this console's own (never the process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(console))
    return registry
