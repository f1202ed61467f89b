"""Frames in, what happened out: the trigger gate, the model, the debouncer. No I/O.

``Inspector.step_many(batch)`` returns an ``Inspection`` per frame (or None when the frame is
not to be inspected or there is no model); sending results and events anywhere is the
dispatcher's job. A backlog of frames is inferred side by side (``edge.daemon.workers``) and
decided in capture order. An inference failure is the ``inference`` fault until a frame infers
again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.config import TriggerConfig
from edge.daemon.model import ModelSlot
from edge.daemon.protocols import Classifier, Prediction
from edge.daemon.status import Faults
from edge.daemon.workers import Replicas
from edge.errors import PiInspectError, SourceError
from edge.events import DefectEvent, FrameResult, ModelInfo
from edge.pipeline import Captured, Preparer
from edge.sources import Frame

FAULT = "inference"

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
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._slot = slot
        self._replicas = Replicas(workers)
        self._preparer = preparer
        self._faults = faults
        self._clock = clock
        self._wall = wall
        self._gate = threading.Lock()
        self._trigger = trigger
        self._pending = 0  # frames still to inspect after a trigger
        self._after = 0.0  # only frames captured after the trigger (unix time)
        self.latest: Inspection | None = None
        self._skipped = ""  # the last reason a frame was skipped (logged once)

    def configure(self, trigger: TriggerConfig, workers: int | None = None) -> None:
        """A reload's trigger settings, and ``model.workers`` (called from the loop's thread)."""
        with self._gate:
            self._trigger = trigger
        if workers is not None:
            self._replicas.resize(workers)

    def trigger(self) -> None:
        """Inspect the next ``trigger.frames`` frames captured from now on."""
        with self._gate:
            self._pending = self._trigger.frames
            self._after = self._wall()

    def _admit(self, frame: Frame) -> bool:
        with self._gate:
            if self._trigger.mode == "continuous":
                return True
            if self._pending > 0 and frame.timestamp >= self._after:
                self._pending -= 1
                return True
        return False

    @property
    def batch(self) -> int:
        """How many queued frames one step may take (``model.workers``)."""
        return self._replicas.count

    def step(self, captured: Captured) -> Inspection | None:
        return self.step_many([captured])[0]

    def step_many(self, batch: list[Captured]) -> list[Inspection | None]:
        """Inspect frames in capture order, inferred side by side where replicas allow; one
        entry per frame (None: not admitted, unreadable, or no model)."""
        out: list[Inspection | None] = [None] * len(batch)
        admitted = [(i, c) for i, c in enumerate(batch) if self._admit(c.frame)]
        if not admitted:
            return out
        slot = self._slot
        with slot.lock:
            clf, debouncer, info = slot.classifier, slot.debouncer, slot.info
            if clf is None or debouncer is None or info is None:
                return out
            inputs = []  # (position, frame, model input, prepare ms)
            for i, captured in admitted:
                try:
                    rgb, prepare_ms = self._preparer.model_input(captured, tuple(clf.input_size))
                except (ValueError, SourceError) as exc:  # a corrupt frame, or a region off it
                    if str(exc) != self._skipped:
                        self._skipped = str(exc)
                        log.warning("skipping frame %d: %s", captured.frame.index, exc)
                    continue
                inputs.append((i, captured.frame, rgb, prepare_ms))
            if not inputs:
                return out
            t_invoke = self._clock()
            try:
                # No feature map on ordinary frames (fetching and dequantizing it costs time
                # on every frame); a snapshot asks for it again on the same input.
                predictions = self._replicas.predict_many(clf, [rgb for _, _, rgb, _ in inputs])
            except (ValueError, RuntimeError, PiInspectError) as exc:
                self._faults.set(FAULT, f"inference failed: {exc}")
                return out
            invoked = self._clock()
            decided = []
            for (i, frame, rgb, prepare_ms), prediction in zip(inputs, predictions, strict=True):
                scores = {
                    label: float(s) for label, s in zip(clf.labels, prediction.scores, strict=True)
                }
                events = debouncer.update(frame.index, frame.timestamp, scores)
                decided.append((i, frame, rgb, prepare_ms, prediction, scores, events, debouncer.active))
        if FAULT in self._faults:
            self._faults.clear(FAULT)
        wall_ms = (invoked - t_invoke) * 1000.0  # every frame of the batch waited this long
        work_ms = (self._clock() - t_invoke) * 1000.0 / len(decided)  # the loop's, per frame
        for i, frame, rgb, prepare_ms, prediction, scores, events, active in decided:
            latency_ms = wall_ms + prepare_ms
            result = FrameResult(frame.index, frame.timestamp, scores, round(latency_ms, 3), active)
            out[i] = Inspection(frame, rgb, prediction, scores, result, events, clf, info, work_ms=work_ms)
            self.latest = out[i]
        return out

    def close(self) -> None:
        """The replicas go (idempotent); the slot owns the model itself."""
        self._replicas.close()
