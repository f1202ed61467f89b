"""The Sparkplug B metrics of the station: their names and types, and the values behind them.

Pure bookkeeping, no MQTT: what a state, a stats line or a part result becomes as metric values,
which of them changed since the last publish (the ``Parts/*`` counters included), and the metric
lists of a birth or a data message. Kept apart from :mod:`pi_inspect.edge.mqtt.sparkplug`, which
owns the session (paho callbacks, ``bdSeq``/``seq``, publishing), so that each stays small.
Not thread-safe: the publisher calls it under its own lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pi_inspect.edge.events import State, Stats
from pi_inspect.edge.mqtt.sparkplug_payload import BOOLEAN, DOUBLE, STRING, UINT64, Metric
from pi_inspect.edge.parts import PartResult

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
SCORES = "Last Part/Scores/"  # + label

NODE_METRICS: dict[str, int] = {
    "Properties/Software Version": STRING,
    "Node/CPU Temp C": DOUBLE,
}
DEVICE_METRICS: dict[str, int] = {
    "State/Verdict": STRING,
    "State/Fault": STRING,
    "State/Active": STRING,
    "State/Model": STRING,
    "Stats/FPS": DOUBLE,
    "Stats/Latency p50 ms": DOUBLE,
    "Stats/Latency p95 ms": DOUBLE,
    "Stats/Frames": UINT64,
    "Stats/Dropped Frames": UINT64,
    "Stats/Uptime s": DOUBLE,
    "Stats/Camera Online": BOOLEAN,
    "Parts/Total": UINT64,
    "Parts/OK": UINT64,
    "Parts/NG": UINT64,
    "Parts/Error": UINT64,
    "Parts/Missed": UINT64,
    "Parts/Late": UINT64,
    "Last Part/Acq ID": UINT64,
    "Last Part/Part ID": UINT64,
    "Last Part/Code": STRING,
    "Last Part/Verdict": STRING,
    "Last Part/Alarms": STRING,
    "Last Part/Latency ms": DOUBLE,
}
_COUNTER_OF_CODE = {
    "ok": "Parts/OK",
    "ng": "Parts/NG",
    "error": "Parts/Error",
    "missed": "Parts/Missed",
}


def ms(seconds: float) -> int:
    """Seconds (``time.time``) as the whole milliseconds of a Sparkplug timestamp."""
    return int(round(seconds * 1000.0))


@dataclass(frozen=True)
class Changes:
    """What one update did: metrics it added (only a birth may carry them), changed names."""

    new: list[str]
    node: list[str]
    device: list[str]


class MetricStore:
    """Every node and device metric's type and current value; ``take_*`` stores what a state,
    stats line or part result says and returns what changed."""

    def __init__(self, sw_version: str = "") -> None:
        self.node_types: dict[str, int] = dict(NODE_METRICS)
        self.device_types: dict[str, int] = dict(DEVICE_METRICS)
        self._values: dict[str, Any] = dict.fromkeys([*NODE_METRICS, *DEVICE_METRICS])
        self._values["Properties/Software Version"] = sw_version or None
        for name in ("Parts/Total", *_COUNTER_OF_CODE.values(), "Parts/Late"):
            self._values[name] = 0

    def take_state(self, state: State) -> Changes:
        model = state.model
        values = {
            "State/Verdict": state.verdict,
            "State/Fault": state.fault,
            "State/Active": ", ".join(state.active),
            "State/Model": f"{model.name} {model.version}" if model is not None else None,
        }
        return self.update(values, labels=model.labels if model is not None else ())

    def take_stats(self, stats: Stats) -> Changes:
        device = {
            "Stats/FPS": stats.fps,
            "Stats/Latency p50 ms": stats.latency_p50_ms,
            "Stats/Latency p95 ms": stats.latency_p95_ms,
            "Stats/Frames": stats.frames,
            "Stats/Dropped Frames": stats.dropped_frames,
            "Stats/Uptime s": stats.uptime_s,
            "Stats/Camera Online": stats.camera_online,
        }
        return self.update(device, node={"Node/CPU Temp C": stats.cpu_temp_c})

    def take_part(self, result: PartResult) -> Changes:
        values: dict[str, Any] = {
            "Last Part/Acq ID": result.acq_id,
            "Last Part/Part ID": result.part_id,
            "Last Part/Code": result.code,
            "Last Part/Verdict": result.verdict,
            "Last Part/Alarms": ", ".join(result.alarms),
            "Last Part/Latency ms": result.latency_ms,
            **{f"{SCORES}{label}": score for label, score in result.scores.items()},
        }
        return self.update(values, count=(result.code, result.late))

    def update(
        self,
        device: dict[str, Any],
        node: dict[str, Any] | None = None,
        count: tuple[str, bool] | None = None,
        labels: tuple[str, ...] = (),
    ) -> Changes:
        """Take new values. ``count``: a part's (code, late); ``labels``: the model's, whose
        score metrics must exist (a new metric: a rebirth)."""
        node = node or {}
        for label in labels:
            name = f"{SCORES}{label}"
            if name not in device and name not in self.device_types:
                device[name] = None
        if count is not None:
            code, late = count
            device["Parts/Total"] = self._values["Parts/Total"] + 1
            counter = _COUNTER_OF_CODE.get(code)
            if counter is not None:
                device[counter] = self._values[counter] + 1
            if late:
                device["Parts/Late"] = self._values["Parts/Late"] + 1
        new = [name for name in device if name not in self.device_types]
        for name in new:  # only per-label scores are added at run time
            self.device_types[name] = DOUBLE
        return Changes(new, self._changes(node), self._changes(device))

    def _changes(self, values: dict[str, Any]) -> list[str]:
        """Store ``values``; the names whose value differs from the stored one."""
        changed = [k for k, v in values.items() if k not in self._values or self._values[k] != v]
        self._values.update(values)
        return changed

    def data(self, changes: Changes, now: int) -> tuple[list[Metric], list[Metric]]:
        """The metrics of the NDATA and the DDATA for ``changes`` (an empty list: none)."""
        return self.node_metrics(changes.node, now), self.device_metrics(changes.device, now)

    def node_metrics(self, names: list[str], now: int) -> list[Metric]:
        return self._metrics(names, self.node_types, now)

    def device_metrics(self, names: list[str], now: int) -> list[Metric]:
        return self._metrics(names, self.device_types, now)

    def _metrics(self, names: list[str], types: dict[str, int], now: int) -> list[Metric]:
        return [Metric(name, types[name], self._values.get(name), now) for name in names]

    def birth(self, bdseq: int, now: int) -> tuple[list[Metric], list[Metric]]:
        """The NBIRTH metrics (``bdSeq``, Rebirth, every node metric) and the DBIRTH ones."""
        node = [
            Metric(BDSEQ, UINT64, bdseq, now),
            Metric(REBIRTH, BOOLEAN, False, now),
            *self.node_metrics(list(self.node_types), now),
        ]
        return node, self.device_metrics(list(self.device_types), now)
