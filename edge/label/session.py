"""One labelling session: frames + store + keys, and strict validation of every request.

The HTTP layer hands parsed JSON and path numbers here; anything not exactly as expected is a
``RequestError`` with an HTTP status. No request value ever becomes part of a file path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from pi_inspect.edge.errors import ConfigError, PiInspectError
from pi_inspect.edge.label.sources import FrameSource
from pi_inspect.edge.label.store import LabelStore
from pi_inspect.edge.label.suggest import Suggestion

Mode = Literal["multilabel", "multiclass"]
ACTION_KEYS = {"n": "next", "p": "previous", "s": "save", "q": "quit", "a": "accept"}
STRIP = 20  # frames either side of the current one in the progress strip


class RequestError(Exception):
    """A request we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def assign_keys(labels: tuple[str, ...], keys: str | None = None) -> dict[str, str]:
    """Key -> label. Default: each label's first letter (the seed's g, e, b, l), else its next
    free letter. ``keys`` is ``"g,e,b,l"`` or ``"gebl"``; n, p, s, q, a stay action keys."""
    if keys:
        chosen = [k.strip().lower() for k in keys.split(",")] if "," in keys else list(keys.lower())
        if len(chosen) != len(labels):
            raise ConfigError(f"--keys gives {len(chosen)} keys for {len(labels)} labels")
        bad = [k for k in chosen if len(k) != 1 or not k.isalnum() or k in ACTION_KEYS]
        if bad:
            raise ConfigError(
                f"--keys: {bad[0]!r} is not a single letter/digit other than n,p,s,q,a"
            )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"--keys: duplicate key in {','.join(chosen)}")
        return dict(zip(chosen, labels, strict=True))
    mapping: dict[str, str] = {}
    for label in labels:
        free = [
            c for c in label.lower() if c.isalnum() and c not in ACTION_KEYS and c not in mapping
        ]
        if not free:
            raise ConfigError(f"no free key for label {label!r}: choose keys with --keys")
        mapping[free[0]] = label
    return mapping


@dataclass(frozen=True)
class SaveRequest:
    index: int
    values: list[bool]


class LabelSession:
    """State shared by all requests; one lock serialises frame decoding and saving.

    ``suggestions`` (frame name -> Suggestion) are what a frame shows until it is saved; in
    multi-class mode only those naming exactly one class are offered.
    """

    def __init__(
        self,
        frames: FrameSource,
        store: LabelStore,
        keys: dict[str, str],
        mode: Mode,
        suggestions: dict[str, Suggestion] | None = None,
    ):
        self.frames = frames
        self.store = store
        self.labels = store.labels
        self.keys = keys
        self.mode = mode
        self.suggestions = {
            name: s
            for name, s in (suggestions or {}).items()
            if len(s.values) == len(self.labels) and (mode != "multiclass" or sum(s.values) == 1)
        }
        self._lock = threading.Lock()

    # --- reading ------------------------------------------------------------------------

    def _values(self, values: list[bool]) -> dict[str, bool]:
        return dict(zip(self.labels, values, strict=True))

    def resume_index(self) -> int:
        """The first unsaved frame after the last saved one (else the first unsaved, else 0)."""
        saved = self.store.saved()
        names = [self.frames.name(i) for i in range(len(self.frames))]
        last = self.store.last_saved()
        after = names.index(last) + 1 if last in names else 0
        for i in [*range(after, len(names)), *range(0, after)]:
            if names[i] not in saved:
                return i
        return min(after, len(names) - 1)

    def state(self) -> dict[str, Any]:
        """What the page needs at start: labels, keys, mode, frame count, where to resume and
        how many frames are saved."""
        with self._lock:
            return {
                "labels": list(self.labels),
                "keys": {label: key for key, label in self.keys.items()},
                "mode": self.mode,
                "count": len(self.frames),
                "start": self.resume_index(),
                "saved": len(self.store.saved()),
            }

    def _index(self, index: int) -> int:
        if not 0 <= index < len(self.frames):
            raise RequestError(404, f"frame {index} out of range 0..{len(self.frames) - 1}")
        return index

    def frame_info(self, index: int) -> dict[str, Any]:
        """Name, saved values (or null) and suggestion (or null) of one frame, the number of
        frames saved and, in ``strip``, which of the frames around it are saved."""
        with self._lock:
            name = self.frames.name(self._index(index))
            saved = self.store.saved()
            values = saved.get(name)
            suggestion = self.suggestions.get(name)
            first, end = max(0, index - STRIP), min(len(self.frames), index + STRIP + 1)
            return {
                "index": index,
                "name": name,
                "saved": values is not None,
                "values": self._values(values) if values is not None else None,
                "suggested": suggestion.by if suggestion else "",
                "suggestion": self._values(list(suggestion.values)) if suggestion else None,
                "saved_count": len(saved),
                "strip_start": first,
                "strip": [self.frames.name(i) in saved for i in range(first, end)],
            }

    def frame_png(self, index: int) -> bytes:
        """The frame as PNG bytes for the page."""
        import cv2

        with self._lock:
            try:
                frame = self.frames.read(self._index(index))
            except PiInspectError as exc:
                raise RequestError(404, str(exc)) from None
        ok, buf = cv2.imencode(".png", frame)
        if not ok:
            raise RequestError(500, f"frame {index} cannot be encoded")
        return buf.tobytes()

    # --- writing ------------------------------------------------------------------------

    def parse_save(self, body: Any) -> SaveRequest:
        """Validate a save body: ``{"index": i, "values": {label: bool, ...}}`` (every label)."""
        if not isinstance(body, dict) or set(body) != {"index", "values"}:
            raise RequestError(400, 'expected exactly {"index": int, "values": {label: bool}}')
        index, values = body["index"], body["values"]
        if type(index) is not int:
            raise RequestError(400, "index must be an integer")
        self._index(index)
        if not isinstance(values, dict) or set(values) != set(self.labels):
            raise RequestError(400, f"values must give exactly the labels {list(self.labels)}")
        if not all(type(values[label]) is bool for label in self.labels):
            raise RequestError(400, "every value must be true or false")
        flags = [values[label] for label in self.labels]
        if self.mode == "multiclass" and sum(flags) != 1:
            raise RequestError(400, "multi-class mode needs exactly one class set")
        return SaveRequest(index=index, values=flags)

    def save(self, body: Any) -> dict[str, Any]:
        """Write the frame and its labels into the output folder."""
        request = self.parse_save(body)
        with self._lock:
            try:
                frame = self.frames.read(request.index)
                name = self.frames.name(request.index)
                source = self.frames.source_id(request.index)
                self.store.save(name, source, frame, request.values)
            except PiInspectError as exc:
                raise RequestError(409, str(exc)) from None
            return {
                "index": request.index,
                "name": name,
                "saved": True,
                "saved_count": len(self.store.saved()),
            }
