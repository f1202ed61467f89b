"""The one place things leave the daemon, and the one place commands come in.

The dispatcher completes events (a ``start`` gets its heat-map snapshot here, and its ``end``
carries the same snapshot name) and fans them out to every output, with results, state and
stats. Outputs that take commands get ``receive`` as their receiver; a command runs on the
caller's thread and always comes back as a ``Reply``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from pi_inspect.edge import verbs
from pi_inspect.edge.collect import Keep
from pi_inspect.edge.daemon.inspector import Inspection
from pi_inspect.edge.daemon.protocols import (
    Classifier,
    Command,
    Output,
    Prediction,
    Reply,
)
from pi_inspect.edge.events import DefectEvent, State, Stats
from pi_inspect.edge.health import Reports
from pi_inspect.edge.outputs import FrameTap, LiveFrame, PartOutput
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.snapshots import SnapshotStore
from pi_inspect.edge.sources import Frame
from pi_inspect.edge.verbs import Station

log = logging.getLogger(__name__)

Heatmap = Callable[[Classifier, Prediction, np.ndarray, str], "np.ndarray | None"]


class Dispatcher:
    def __init__(
        self,
        heatmap: Heatmap,
        station: Station,
        top_label: Callable[[dict[str, float], tuple[str, ...]], str | None] = (
            lambda _scores, _active: None
        ),
        device: str | None = None,
        name: str = "default",
        more_reporters: Callable[[], list[Reports]] = list,
        on_rollback: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self._heatmap = heatmap
        self._more_reporters = more_reporters  # parts beyond the outputs (the shadow's record)
        self._on_rollback = on_rollback  # the station switches back to the previous model
        self._station = station  # what the verbs of pi_inspect.edge.verbs run on
        self._device = device  # stamped on every event, state and stats line sent
        self._name = name  # which of the device's stations: stamped likewise
        self._top_label = top_label  # whose heat map a live viewer sees: (scores, raised)
        self._outputs: list[Output] = []
        self._owned: list[Output] = []  # what ``close`` closes (the hub closes shared ones)
        self._part_outputs: list[PartOutput] = []
        self._taps: list[FrameTap] = []
        self._snapshots: SnapshotStore | None = None
        self._open_snapshots: dict[str, str] = {}  # event id -> snapshot, until its end
        self._lock = threading.Lock()  # the snapshot map (reload ends defects off the loop)

    def open(
        self,
        outputs: Iterable[Output],
        snapshots: SnapshotStore | None,
        owned: Iterable[Output] | None = None,
    ) -> None:
        """Send to ``outputs`` from now on (commands reach the station through the hub,
        ``pi_inspect.edge.daemon.hub``); ``close`` closes ``owned`` (None: all of them)."""
        self._outputs = list(outputs)
        self._owned = list(owned) if owned is not None else list(self._outputs)
        self._taps = [tap for out in self._outputs if (tap := getattr(out, "frame_tap", None))]
        self._part_outputs = [out for out in self._outputs if isinstance(out, PartOutput)]
        self._snapshots = snapshots

    # -- out ----------------------------------------------------------------------------------
    def inspection(self, inspection: Inspection) -> list[DefectEvent]:
        """Events (completed), then the frame's result; returns the events as sent."""
        sent = self.events(inspection.events, inspection)
        if inspection.keep is not None and not inspection.new_defect:  # a start has its snapshot
            self.sample(inspection, inspection.keep)
        if inspection.rollback is not None:
            self._on_rollback(inspection.rollback)
        result = replace(inspection.result, station=self._name)
        for out in self._outputs:
            out.publish_result(result)
        return sent

    def parts(self, results: Iterable[PartResult]) -> list[PartResult]:
        """Each part's one result, to the outputs that take parts; returns them as sent."""
        sent = [replace(r, device=self._device, station=self._name) for r in results]
        for result in sent:
            if result.code == "missed" or result.late:
                log.warning(
                    "part %d%s %s: %s", result.acq_id,
                    f" (part id {result.part_id})" if result.part_id is not None else "",
                    "missed" if result.code == "missed" else f"late ({result.latency_ms:.0f} ms)",
                    result.reason or f"verdict {result.verdict}",
                )  # fmt: skip
            for out in self._part_outputs:
                try:
                    out.publish_part(result)
                except Exception as exc:  # one output's bug must not cost the others the part
                    log.error("part %d not taken by %s: %s", result.acq_id, type(out).__name__, exc)
        return sent

    def events(
        self, events: Iterable[DefectEvent], inspection: Inspection | None = None
    ) -> list[DefectEvent]:
        """Complete and send ``events``; a ``start`` is snapshotted from ``inspection``."""
        sent = []
        for event in events:
            jpeg = None
            if event.kind == "start" and inspection is not None:
                event, jpeg = self._snapshot(event, inspection)
            with self._lock:
                if event.kind == "start" and event.snapshot is not None:
                    self._open_snapshots[event.event_id] = event.snapshot
                elif event.kind == "end":
                    event = replace(event, snapshot=self._open_snapshots.pop(event.event_id, None))
            event = replace(event, device=self._device, station=self._name)
            if jpeg is not None:
                for out in self._outputs:
                    out.publish_snapshot(jpeg, event)
            for out in self._outputs:
                out.publish_event(event)
            sent.append(event)
        return sent

    def _snapshot(
        self, event: DefectEvent, inspection: Inspection
    ) -> tuple[DefectEvent, bytes | None]:
        if self._snapshots is None:
            return event, None
        i = inspection
        image = _full_image(i, f"snapshot of {event.event_id}")
        if image is None:
            return event, None
        heat = self._heatmap(i.classifier, i.prediction, i.model_input, event.label)
        meta = {
            "event": event.to_dict(),
            "scores": i.scores,
            "model_sha256": i.model.sha256,
            "model": i.model.name,
            "model_version": i.model.version,
        }
        saved = self._snapshots.save(image, heat, meta, tag=event.label)
        if saved is None:  # the store's health says why, as a fault while it lasts
            return event, None
        return replace(event, snapshot=saved.name), saved.jpeg

    def snapshot(self, inspection: Inspection | None, label: str | None) -> str | None:
        """Save ``inspection``'s frame on request (heat map of ``label``); its file name."""
        if inspection is None or self._snapshots is None:
            return None
        i = inspection
        image = _full_image(i, "snapshot")
        if image is None:
            return None
        heat = self._heatmap(i.classifier, i.prediction, i.model_input, label) if label else None
        meta = {
            "request": "snapshot",
            "frame_index": i.frame.index,
            "scores": i.scores,
            "model_sha256": i.model.sha256,
        }
        saved = self._snapshots.save(image, heat, meta, tag="request")
        return saved.name if saved is not None else None

    def sample(
        self, inspection: Inspection | None, keep: Keep, right: list[str] | None = None
    ) -> str | None:
        """Keep ``inspection``'s frame as a sample for retraining: the view the model inspected
        (region, rotation), no heat map; ``right``: the labels an operator says are right ([] is good).
        Its file name, or None when there is no frame or the store refuses it (its health
        says why)."""
        if inspection is None or self._snapshots is None:
            return None
        i = inspection
        image = _full_image(i, "sample")
        if image is None:
            return None
        meta = {
            "sample": keep.reason,
            "device": self._device,
            "time": i.frame.timestamp,
            "frame_index": i.frame.index,
            "scores": i.scores,
            "thresholds": keep.thresholds,
            "verdict": list(i.result.active),
            "model": i.model.name,
            "model_version": i.model.version,
            "model_sha256": i.model.sha256,
            "view": i.frame.view.to_dict(),  # already applied: the image is what was inspected
            **({"right_labels": list(right)} if right is not None else {}),
            **keep.details,
        }
        saved = self._snapshots.save(image, None, meta, tag=keep.reason)
        return saved.name if saved is not None else None

    def reporters(self) -> list[Reports]:
        """The parts that keep their own health (the snapshot store, outputs that can fail on
        their own): the loop polls them, they never call back."""
        parts: list[Reports] = [self._snapshots] if self._snapshots is not None else []
        parts += [out for out in self._outputs if isinstance(out, Reports)]
        return parts + self._more_reporters()

    def _live(self, frame: Frame, inspection: Inspection | None) -> None:
        for tap in self._taps:
            if not tap.wants_frame(self._name):
                continue
            scores = inspection.scores if inspection is not None else None
            heat, label = None, None
            if inspection is not None and tap.wants_heat(self._name):
                i = inspection
                label = self._top_label(i.scores, i.result.active)
                heat = (
                    self._heatmap(i.classifier, i.prediction, i.model_input, label)
                    if label
                    else None
                )
            jpeg = None
            if heat is None and frame.view.identity and hasattr(frame.pixels, "data"):
                # a JPEG camera's frame as it came: nothing to decode or encode
                image, roi, jpeg = None, None, frame.pixels.data.tobytes()
            elif heat is None and frame.view.roi is not None:
                # the whole camera frame, the inspected region outlined
                image, roi = frame.pixels.full(), frame.view.fractions(frame.pixels.size)
            else:  # the inspected view itself (the heat map covers it)
                image, roi = frame.image, None
            tap.offer_frame(
                LiveFrame(
                    image, frame.index, frame.timestamp, scores, heat, label, roi, jpeg, self._name
                )
            )

    def live(self, frame: Frame, inspection: Inspection | None) -> None:
        """Hand a captured frame to live viewers, only while one watches (the tap decides,
        cheaply); the heat map, one more model run, only while a viewer asks for it. A frame
        that cannot be decoded in full is not shown (the stats count it), never a crash."""
        try:
            self._live(frame, inspection)
        except ValueError as exc:
            log.debug("live frame %d not shown: %s", frame.index, exc)

    def state(self, state: State | None) -> None:
        if state is None:
            return
        state = replace(state, device=self._device, station=self._name)
        for out in self._outputs:
            out.publish_state(state)

    def stats(self, stats: Stats) -> None:
        stats = replace(stats, device=self._device, station=self._name)
        for out in self._outputs:
            out.publish_stats(stats)

    # -- in -----------------------------------------------------------------------------------
    def receive(self, command: Command) -> Reply:
        """Run one validated command; never raises (a failure is an ``ok: false`` reply)."""
        return verbs.run(self._station, command)

    def close(self) -> None:
        """Close the outputs this station owns; each one is closed even if another fails."""
        for out in self._owned:
            try:
                out.close()
            except Exception as exc:  # shutdown goes on: the LEDs must go off regardless
                log.warning("closing %s: %s", type(out).__name__, exc)


def _full_image(inspection: Inspection, what: str) -> np.ndarray | None:
    """The frame's full decode (bounded by ``source.max_pixels``), or None with one line why."""
    try:
        return inspection.frame.image
    except ValueError as exc:
        log.warning("no %s of frame %d: %s", what, inspection.frame.index, exc)
        return None
