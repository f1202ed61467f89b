"""What the daemon tells the world: defect events, per-frame results, stats and state.

These plain dataclasses are the payload contract shared by every output (stdout JSON lines,
MQTT, snapshots). ``to_dict()`` gives the JSON form documented in docs/mqtt.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal["start", "end"]
Verdict = Literal["ok", "defect", "fault", "starting"]


@dataclass(frozen=True)
class DefectEvent:
    """One physical defect gives one ``start`` and one ``end`` event sharing ``event_id``."""

    event_id: str
    kind: EventKind
    label: str
    started_at: float  # unix time of the first frame of the defect
    ended_at: float | None  # unix time of the last defect frame; None on ``start``
    peak_score: float
    frames: int  # frames that exceeded the threshold so far
    first_frame: int  # frame index in the source
    last_frame: int | None = None
    snapshot: str | None = None  # file name of the heat-map snapshot, if one was saved
    model_sha256: str | None = None
    condition: str | None = None  # the alarm condition that holds: "length absent"
    meaning: str | None = None  # what the label means, as the data set declared it
    device: str | None = None  # the station that saw it ([device] id), set when it is sent
    station: str | None = None  # which of the device's stations ([stations.<name>]), when sent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameResult:
    """The scores for one inferred frame."""

    frame_index: int
    timestamp: float  # unix time of capture
    scores: dict[str, float]
    latency_ms: float  # preprocess + inference
    active: tuple[str, ...] = ()  # labels currently raised after debounce
    station: str | None = None  # which of the device's stations, set when it is sent

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["active"] = list(self.active)
        if "conditions" in d:
            d["conditions"] = list(self.conditions)
        return d


@dataclass(frozen=True)
class Stats:
    """A periodic health line: moving averages, not per-frame noise."""

    fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    frames: int
    dropped_frames: int
    uptime_s: float
    camera_online: bool
    cpu_temp_c: float | None = None  # the SoC temperature, where the kernel exposes it
    extra: dict[str, Any] = field(default_factory=dict)
    device: str | None = None  # the station ([device] id), set when it is sent
    station: str | None = None  # which of the device's stations, set when it is sent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    labels: tuple[str, ...] = ()  # every label the model scores, in output order
    # (label, alarm, meaning) per label as the data set declared it; alarm: present/absent/never
    meanings: tuple[tuple[str, str, str], ...] = ()

    def condition(self, label: str) -> str:
        """The alarm condition of ``label`` in words (``"length absent"``); the label itself
        where nothing is declared."""
        for name, alarm, _ in self.meanings:
            if name == label and alarm in ("present", "absent"):
                return f"{label} {alarm}"
        return label


@dataclass(frozen=True)
class State:
    """The current verdict: what an operator (or Home Assistant) should show right now."""

    verdict: Verdict
    active: tuple[str, ...]
    model: ModelInfo | None
    since: float  # unix time the verdict last changed
    fault: str | None = None  # one line, when verdict == "fault"
    thresholds: dict[str, float] = field(default_factory=dict)  # per alarming label, in force
    alarms: dict[str, str] = field(default_factory=dict)  # label -> "above" or "below"
    lamps: dict[str, bool] = field(default_factory=dict)  # green/red/amber/relay as shown
    conditions: tuple[str, ...] = ()  # the active labels' alarm conditions: "length absent"
    # the conditions a latched red LED and relay still show (gpio.latch) until acknowledged,
    # ended or not: with a latch the verdict may be "ok" while red is on
    latched: tuple[str, ...] = ()
    device: str | None = None  # the station ([device] id), set when it is sent
    station: str | None = None  # which of the device's stations, set when it is sent

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["active"] = list(self.active)
        d["conditions"] = list(self.conditions)
        d["latched"] = list(self.latched)
        if d["model"] is not None:
            d["model"]["labels"] = list(self.model.labels)
            d["model"]["meanings"] = {
                label: {"alarm": alarm, "meaning": meaning}
                for label, alarm, meaning in self.model.meanings
            }
        return d
