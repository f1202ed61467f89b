"""One frame in, what happened out: the trigger gate, the model, the debouncer. No I/O.

``Inspector.step(captured)`` returns an ``Inspection`` (or None when the frame is not to be
inspected or there is no model); sending its result and events anywhere is the dispatcher's
job. An inference failure is the ``inference`` fault until a frame infers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pi_inspect.edge.bundle import identity
from pi_inspect.edge.collect import CollectConfig, Collector, Keep
from pi_inspect.edge.config import TriggerConfig
from pi_inspect.edge.daemon.model import ModelSlot
from pi_inspect.edge.daemon.protocols import Classifier, Prediction
from pi_inspect.edge.daemon.shadow import Shadow, ShadowError
from pi_inspect.edge.daemon.status import CAMERA_FAULT, Faults
from pi_inspect.edge.daemon.watch import PromotionWatch
from pi_inspect.edge.drift import DriftConfig, DriftMonitor
from pi_inspect.edge.errors import PiInspectError, SourceError
from pi_inspect.edge.events import DefectEvent, FrameResult, ModelInfo
from pi_inspect.edge.health import Reports
from pi_inspect.edge.parts import PartResult, PartTracker
from pi_inspect.edge.pipeline import Captured, Preparer
from pi_inspect.edge.shadow_config import ShadowConfig
from pi_inspect.edge.sources import Frame
from pi_inspect.edge.stats import AlarmRate

FAULT = "inference"
SLACK = 1e-4  # float rounding a score may carry past 0 or 1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inspection:
    """What one inspected frame gave: its scores and result, and the defect events it started
    or ended (incomplete until the dispatcher attaches snapshots)."""

    frame: Frame
    model_input: np.ndarray  # what the model saw (RGB at its input size)
    prediction: Prediction
    scores: dict[str, float]
    result: FrameResult
    events: list[DefectEvent]
    classifier: Classifier  # the model that scored it (heat maps re-run it)
    model: ModelInfo
    work_ms: float  # this loop's own work (invoke and bookkeeping, without the resize)
    keep: Keep | None = None  # a sample to keep (pi_inspect.edge.collect), decided here
    rollback: str | None = None  # why a promoted model must go (pi_inspect.edge.daemon.watch)

    @property
    def new_defect(self) -> bool:
        return any(e.kind == "start" for e in self.events)


class Inspector:
    """Decides, for one frame at a time; keeps the latest inspection for snapshot requests."""

    def __init__(
        self,
        slot: ModelSlot,
        preparer: Preparer,
        faults: Faults,
        trigger: TriggerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        collect: CollectConfig | None = None,
        shadow: ShadowConfig | None = None,
        shadow_loader: Callable[[str], Classifier] | None = None,
        record_dir: Path | None = None,
        watch: PromotionWatch | None = None,
        drift: DriftConfig | None = None,
    ) -> None:
        self._slot = slot
        self._collector: Collector | None = None
        self._shadow: Shadow | ShadowError | None = None
        self._shadow_loader = shadow_loader
        self._record_dir = record_dir
        self._watch = watch
        self._drift = DriftMonitor(drift or DriftConfig())
        self._alarm_rate = AlarmRate()
        self._preparer = preparer
        self._faults = faults
        self._clock = clock
        self._wall = wall
        self._gate = threading.Lock()
        self._trigger = trigger
        self.parts = PartTracker(clock=clock, wall=wall)  # each trigger's one result
        self._configure_parts(trigger)
        self.latest: Inspection | None = None
        self._skipped = ""  # the last reason a frame was skipped (logged once)
        self._collect(collect)
        self._set_shadow(shadow)

    def configure(
        self, trigger: TriggerConfig, collect: CollectConfig | None = None,
        shadow: ShadowConfig | None = None,
        drift: DriftConfig | None = None,
    ) -> None:  # fmt: skip
        """A reload's trigger, collection rules (changed rules start their quotas afresh) and
        shadow candidate (a changed one starts a new record)."""
        with self._gate:
            self._trigger = trigger
        self._configure_parts(trigger)
        self._collect(collect)
        self._set_shadow(shadow)
        if self._watch is not None:
            self._watch.reload(shadow.watch_frames if shadow is not None else None)
        if drift is not None and drift != self._drift.config:
            self._drift = DriftMonitor(drift)

    def _set_shadow(self, config: ShadowConfig | None) -> None:
        current = self._shadow
        if current is not None and config is not None and current.config == config:
            return
        self._shadow = None
        if current is not None:
            current.close()
        if config is None or config.bundle is None or self._shadow_loader is None:
            return
        try:
            candidate = self._shadow_loader(config.bundle)
        except (PiInspectError, OSError, ValueError) as exc:
            message = f"shadow candidate {config.bundle} not loaded: {str(exc).splitlines()[0]}"
            log.warning("%s", message)
            self._shadow = ShadowError(config, message)
            return
        log.info("shadow: %s runs beside the model in service", candidate.info.name)
        self._shadow = Shadow(config, candidate, self._record_dir, clock=self._clock)

    def _configure_parts(self, t: TriggerConfig) -> None:
        self.parts.configure(
            t.frames, t.deadline_ms, t.late_verdict, t.frame_timeout_ms, t.max_pending
        )

    def reporters(self) -> list[Reports]:
        """Drift, parts and the shadow's record, for stats (the loop polls them with the other
        parts of the station)."""
        parts: list[Reports] = [self._drift, self._alarm_rate]
        if self._trigger.mode != "continuous":
            parts.append(self.parts)
        return parts + ([self._shadow] if self._shadow is not None else [])

    def close(self) -> None:
        if self._shadow is not None:
            self._shadow.close()
            self._shadow = None

    def _collect(self, collect: CollectConfig | None) -> None:
        if collect is None or not (collect.near.enabled or collect.random.enabled):
            self._collector = None
        elif self._collector is None or self._collector.config != collect:
            self._collector = Collector(collect, clock=self._clock)

    def trigger(self, source: str = "command", part_id: int | None = None) -> int | None:
        """A part: inspect the next ``trigger.frames`` frames captured from now on for it, and
        return its acquisition ID; None in continuous mode, where every frame is inspected and
        a trigger means nothing. While the camera is down the part is missed at once."""
        with self._gate:
            if self._trigger.mode == "continuous":
                return None
        camera = self._faults.active().get(CAMERA_FAULT)
        missed = f"camera offline: {camera}" if camera else None
        part, _ = self.parts.trigger(source, part_id, missed=missed)
        return part.acq_id

    def drain_parts(self, expire: bool = True) -> list[PartResult]:
        """The part results since the last call, in trigger order (the loop sends them)."""
        return self.parts.drain(expire)

    def _admit(self, frame: Frame) -> bool:
        with self._gate:
            if self._trigger.mode == "continuous":
                return True
        return self.parts.wants(frame.timestamp)

    def _failed(self, frame: Frame, reason: str) -> None:
        if self._trigger.mode != "continuous":
            self.parts.failed(frame.timestamp, reason)

    def step(self, captured: Captured) -> Inspection | None:
        frame = captured.frame
        if not self._admit(frame):
            return None
        slot = self._slot
        with slot.lock:
            clf, debouncer, info = slot.classifier, slot.debouncer, slot.info
            if clf is None or debouncer is None or info is None:
                self._failed(frame, "no model loaded")
                return None
            try:
                rgb, prepare_ms = self._preparer.model_input(captured, tuple(clf.input_size))
            except (ValueError, SourceError) as exc:  # a corrupt frame, or a region off it
                if str(exc) != self._skipped:
                    self._skipped = str(exc)
                    log.warning("skipping frame %d: %s", frame.index, exc)
                return None
            t_invoke = self._clock()
            try:
                # No feature map on ordinary frames (fetching and dequantizing it costs time
                # on every frame); a snapshot asks for it again on the same input.
                prediction = clf.predict(rgb, with_features=False)
            except (ValueError, RuntimeError, PiInspectError) as exc:
                self._faults.set(FAULT, f"inference failed: {exc}")
                self._failed(frame, f"inference failed: {exc}")
                return None
            invoked = self._clock()
            scores = {
                label: float(s) for label, s in zip(clf.labels, prediction.scores, strict=True)
            }
            bad = [f"{k}={v:g}" for k, v in scores.items() if not -SLACK <= v <= 1 + SLACK]
            if bad:  # NaN, inf or out of range: a broken model, never a score (nor valid JSON)
                self._faults.set(FAULT, f"model output not a score in [0, 1]: {', '.join(bad)}")
                self._failed(frame, "model output not a score")
                return None
            events = debouncer.update(frame.index, frame.timestamp, scores)
            active = debouncer.active
            rules = debouncer.rules
            keep = self._collector.decide(scores, rules) if self._collector else None
            alarms = [label for label, r in rules.items() if label in scores and r.alarms(scores[label])]
            alarmed = bool(alarms)
            model = identity(clf)
            rollback = self._watch.observe(model, alarmed) if self._watch is not None else None
            reference = getattr(getattr(clf, "manifest", None), "reference", None)
            self._drift.observe(model, reference, scores, alarmed)
            self._alarm_rate.observe(alarmed)
        if FAULT in self._faults:
            self._faults.clear(FAULT)
        if self._shadow is not None:
            keep = self._shadow_step(captured, rgb, scores, rules) or keep
        latency_ms = (invoked - t_invoke) * 1000.0 + prepare_ms
        if self._trigger.mode != "continuous":
            self.parts.frame(frame.index, frame.timestamp, scores, alarms, latency_ms, model[:12])
        result = FrameResult(frame.index, frame.timestamp, scores, round(latency_ms, 3), active)
        inspection = Inspection(
            frame, rgb, prediction, scores, result, events, clf, info,
            work_ms=(self._clock() - t_invoke) * 1000.0, keep=keep, rollback=rollback,
        )  # fmt: skip
        self.latest = inspection
        return inspection

    def _shadow_step(
        self, captured: Captured, rgb: np.ndarray, scores: dict[str, float], rules: dict
    ) -> Keep | None:
        def prepared(size: tuple[int, int]) -> np.ndarray:
            if size == rgb.shape[1::-1]:
                return rgb
            return self._preparer.model_input(captured, size)[0]

        try:
            return self._shadow.observe(prepared, scores, rules)
        except (ValueError, RuntimeError, PiInspectError) as exc:  # the candidate's problem
            message = f"shadow candidate failed: {str(exc).splitlines()[0]}"
            log.warning("%s", message)
            self._shadow.close()
            self._shadow = ShadowError(self._shadow.config, message)
            return None
