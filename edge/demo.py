"""``pi-inspect demo``: the daemon on the built-in bundle and a freshly rendered seam video.

Renders a synthetic seam video with known defects (pi_inspect.edge.synth), runs the real daemon on it with
gpiozero's MockFactory (LED states shown in the terminal), writes heat-map snapshots to a
temporary folder, and closes with a summary: frames, FPS, latency, and the defects found
against the ground truth: event-level recall and precision (an event counts only for its own
occurrence: it overlaps it and is at most about twice as long, so a stuck alarm matches nothing) and the
share of alarmed frames that lie on a true defect of their label.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pi_inspect.edge.events import DefectEvent
    from pi_inspect.edge.signals import Lamps


@dataclass(frozen=True)
class Occurrence:
    label: str
    first_frame: int
    last_frame: int


@dataclass(frozen=True)
class Score:
    events: int
    occurrences: int
    matched: int
    missed: tuple[Occurrence, ...] = ()  # occurrences no event matched
    false_alarms: tuple[tuple[str, int, int], ...] = ()  # (label, first, last) of unmatched events
    alarmed_frames: int = 0  # (label, frame) pairs inside an event's first..last frames
    alarmed_on_defect: int = 0  # of those, the ones inside a true occurrence of that label

    @property
    def frame_precision(self) -> float:
        """The share of alarmed frames that lie on a true defect (1.0 when nothing alarmed)."""
        return self.alarmed_on_defect / self.alarmed_frames if self.alarmed_frames else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.events if self.events else float(self.occurrences == 0)

    @property
    def recall(self) -> float:
        return self.matched / self.occurrences if self.occurrences else float(self.events == 0)


def read_occurrences(path: Path) -> list[Occurrence]:
    """``id,label,first_frame,last_frame`` rows written by pi_inspect.edge.synth next to the video."""
    with open(path, newline="") as fh:
        return [
            Occurrence(row["label"], int(row["first_frame"]), int(row["last_frame"]))
            for row in csv.DictReader(fh)
        ]


def as_anomaly(truth: list[Occurrence], label: str = "anomaly") -> list[Occurrence]:
    """The ground truth as an anomaly model sees it: every defect, whatever its kind, is one
    ``anomaly`` occurrence (overlapping ones merge into one)."""
    merged: list[Occurrence] = []
    for occ in sorted(truth, key=lambda o: o.first_frame):
        if merged and occ.first_frame <= merged[-1].last_frame:
            last = merged.pop()
            occ = Occurrence(label, last.first_frame, max(last.last_frame, occ.last_frame))
        merged.append(Occurrence(label, occ.first_frame, occ.last_frame))
    return merged


def match_events(events: list[DefectEvent], truth: list[Occurrence], tolerance: int = 3) -> Score:
    """An event matches an unmatched occurrence of its label whose frames overlap its own
    (within ``tolerance`` frames) and that could explain it: at most twice the occurrence's
    length plus ``2 * tolerance`` frames (a defect is seen a little before and after its
    ground-truth frames). An event is scored against its own occurrence only, so an alarm stuck
    on for the whole video matches nothing. Each occurrence and each event is matched at most once."""
    used: set[int] = set()
    matched = 0
    false_alarms: list[tuple[str, int, int]] = []
    for event in sorted(events, key=lambda e: e.first_frame):
        last = event.last_frame if event.last_frame is not None else event.first_frame
        best, best_overlap = None, None
        for i, occ in enumerate(truth):
            if i in used or occ.label != event.label:
                continue
            span = occ.last_frame - occ.first_frame + 1
            if last - event.first_frame + 1 > 2 * span + 2 * tolerance:
                continue  # longer than this occurrence can explain
            overlap = min(last, occ.last_frame) - max(event.first_frame, occ.first_frame)
            if overlap >= -tolerance and (best_overlap is None or overlap > best_overlap):
                best, best_overlap = i, overlap
        if best is not None:
            used.add(best)
            matched += 1
        else:
            false_alarms.append((event.label, event.first_frame, last))
    missed = tuple(occ for i, occ in enumerate(truth) if i not in used)
    alarmed: set[tuple[str, int]] = set()
    for event in events:
        last = event.last_frame if event.last_frame is not None else event.first_frame
        alarmed.update((event.label, f) for f in range(event.first_frame, last + 1))
    on_defect = sum(
        any(o.label == label and o.first_frame <= f <= o.last_frame for o in truth)
        for label, f in alarmed
    )
    return Score(
        len(events), len(truth), matched, missed, tuple(false_alarms), len(alarmed), on_defect
    )


class LampView:
    """LED states in the terminal: a live status line on a TTY, one line per change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._lock = threading.Lock()
        self._last = ""

    def show(self, lamps: Lamps) -> None:
        text = lamps.render()
        with self._lock:
            if text == self._last:
                return
            self._last = text
            if self._tty:
                self._stream.write(f"\r  LEDs {text}   ")
            else:
                self._stream.write(f"  LEDs {text}\n")
            self._stream.flush()

    def say(self, line: str) -> None:
        with self._lock:
            prefix = "\r\033[K" if self._tty else ""
            self._stream.write(f"{prefix}{line}\n")
            if self._tty and self._last:
                self._stream.write(f"  LEDs {self._last}   ")
            self._stream.flush()


class ConsoleOutput:
    """A human-readable Output for the demo: one line per defect start/end, video time included."""

    def __init__(self, view: LampView, fps: float) -> None:
        self._view = view
        self._fps = fps

    def _at(self, frame: int) -> str:
        return f"{frame / self._fps:5.1f} s"

    def publish_event(self, event: DefectEvent) -> None:
        if event.kind == "start":
            snap = f"  heat map {event.snapshot}" if event.snapshot else ""
            meaning = f" ({event.meaning})" if event.meaning else ""
            self._view.say(
                f"  {self._at(event.first_frame)}  ALARM   {self._condition(event)}{meaning} "
                f"from frame {event.first_frame:<4} score {event.peak_score:.2f}{snap}"
            )
        else:
            self._view.say(
                f"  {self._at(event.last_frame or event.first_frame)}  cleared "
                f"{self._condition(event)} "
                f"frames {event.first_frame}-{event.last_frame}, {event.frames} alarming, "
                f"peak {event.peak_score:.2f}"
            )

    @staticmethod
    def _condition(event: DefectEvent) -> str:
        return f"{event.condition or event.label:<14}"

    def publish_result(self, result) -> None: ...

    def publish_stats(self, stats) -> None: ...

    def publish_state(self, state) -> None:
        if state.verdict == "fault":
            self._view.say(f"  FAULT: {state.fault}")

    def publish_snapshot(self, jpeg: bytes, event) -> None: ...

    def close(self) -> None: ...
