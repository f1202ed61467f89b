"""The live view's frame tap: frames flow only while someone watches, at the viewer's rate.

The daemon asks ``wants_frame()`` for every captured frame; it is true only while a viewer has
asked for a frame in the last ``idle_s`` seconds and the next frame of the live rate is due, so
with nobody watching the cost is one clock read per frame. Frames are JPEG-encoded in the HTTP
thread that asks for them (never in the inference loop), once per frame and view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pi_inspect.edge.outputs import LiveFrame

MAX_WIDTH = 640  # a phone screen; larger frames are shrunk before encoding


@dataclass(frozen=True)
class Encoded:
    """One JPEG of the live view and what it shows."""

    jpeg: bytes
    frame: LiveFrame
    heat: bool  # the heat map is blended in


class LiveView:
    """The frame tap of the console (thread-safe)."""

    def __init__(
        self,
        fps: float = 5.0,
        *,
        idle_s: float = 3.0,
        jpeg_quality: int = 75,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._period = 1.0 / fps
        self._idle_s = idle_s
        self._quality = jpeg_quality
        self._clock = clock
        self._cond = threading.Condition()
        self._last_request = -1e18
        self._heat_until = -1e18
        self._due = -1e18  # when the next frame may be taken
        self._frame: LiveFrame | None = None
        self._seq = 0
        self._cache: dict[bool, tuple[int, Encoded]] = {}
        self._viewers: dict[str, float] = {}
        self.offered = 0  # frames the daemon handed over (the bench and tests read it)

    # -- the daemon's side -------------------------------------------------------------------
    def wants_frame(self, station: str = "default") -> bool:
        now = self._clock()
        return now - self._last_request < self._idle_s and now >= self._due

    def wants_heat(self, station: str = "default") -> bool:
        return self._clock() < self._heat_until

    def offer_frame(self, frame: LiveFrame) -> None:
        with self._cond:
            self._due = self._clock() + self._period
            self._frame = frame
            self._seq += 1
            self.offered += 1
            self._cond.notify_all()

    # -- the viewer's side -------------------------------------------------------------------
    def watching(self) -> int:
        """Viewers that asked for a frame within ``idle_s`` seconds."""
        now = self._clock()
        with self._cond:
            for viewer in [v for v, seen in self._viewers.items() if now - seen >= self._idle_s]:
                del self._viewers[viewer]
            return len(self._viewers)

    def latest(self) -> LiveFrame | None:
        with self._cond:
            return self._frame

    def request(
        self, viewer: str, *, heat: bool = False, after: int = 0, wait_s: float = 1.0
    ) -> tuple[int, Encoded] | None:
        """The newest frame as JPEG (a newer one than sequence ``after`` if one comes within
        ``wait_s``); also the viewer's heartbeat that keeps frames flowing."""
        now = self._clock()
        with self._cond:
            self._last_request = now
            self._viewers[viewer[:64]] = now
            if len(self._viewers) > 256:  # a viewer id is client-chosen: keep the map bounded
                self._viewers.pop(next(iter(self._viewers)))
            if heat:
                self._heat_until = now + self._idle_s
            self._cond.wait_for(lambda: self._seq > after, timeout=wait_s)
            seq, frame = self._seq, self._frame
            cached = self._cache.get(heat)
            if frame is None:
                return None
            if cached is not None and cached[0] == seq:
                return cached
        encoded = Encoded(
            _encode(frame, heat, self._quality), frame, heat and frame.heat is not None
        )
        with self._cond:
            self._cache[heat] = (seq, encoded)
        return seq, encoded


def _encode(frame: LiveFrame, heat: bool, quality: int) -> bytes:
    import cv2

    from pi_inspect.edge.snapshots import overlay

    if frame.jpeg is not None:
        return frame.jpeg
    image: Any = frame.image
    if heat and frame.heat is not None:
        image = overlay(image, frame.heat)
    h, w = image.shape[:2]
    if w > MAX_WIDTH:
        image = cv2.resize(
            image, (MAX_WIDTH, round(h * MAX_WIDTH / w)), interpolation=cv2.INTER_AREA
        )
        h, w = image.shape[:2]
    if frame.roi is not None:  # outline the inspected region (on a copy: the frame is shared)
        x, y, rw, rh = frame.roi
        image = image.copy() if image is frame.image else image
        corner = (round((x + rw) * w) - 1, round((y + rh) * h) - 1)
        cv2.rectangle(image, (round(x * w), round(y * h)), corner, (0, 200, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise OSError("cannot encode the live frame as JPEG")
    return jpeg.tobytes()


class LiveViews:
    """One ``LiveView`` per station, as one frame tap: each station's frames flow only while
    someone watches that station. With ``stations`` given, those are the views there are (None
    is the first); a name outside them gets a view of its own that is not kept."""

    def __init__(
        self,
        make: Callable[[], LiveView],
        first: LiveView | None = None,
        stations: tuple[str, ...] = (),
    ) -> None:
        self._make = make
        self._first = first  # the view of the first station that asks (a view given as is)
        self._views: dict[str, LiveView] = {name: make() for name in stations}
        self._fixed = bool(stations)
        self._lock = threading.Lock()

    def view(self, station: str | None = None) -> LiveView:
        name = station or next(iter(self._views), "default")
        found = self._views.get(name)
        if found is None:
            if self._fixed:
                return self._make()
            with self._lock:
                if name not in self._views:
                    first, self._first = self._first, None
                    self._views[name] = first if first is not None else self._make()
                found = self._views[name]
        return found

    def wants_frame(self, station: str = "default") -> bool:
        return self.view(station).wants_frame()

    def wants_heat(self, station: str = "default") -> bool:
        return self.view(station).wants_heat()

    def offer_frame(self, frame: LiveFrame) -> None:
        self.view(frame.station).offer_frame(frame)

    def watching(self) -> int:
        with self._lock:
            views = list(self._views.values())
        return sum(view.watching() for view in views)

    def latest(self, station: str | None = None) -> LiveFrame | None:
        return self.view(station).latest()

    def request(self, viewer: str, *, station: str | None = None, **how: Any):
        return self.view(station).request(viewer, **how)
