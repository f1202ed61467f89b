"""Capture overlaps inference: a capture thread -> a bounded queue -> the inference loop.

The capture thread reads (and preprocesses) the next frame while the inference loop runs the
model on the previous one; OpenCV and the interpreter release the GIL, so the two really run in
parallel on a multi-core Pi. The queue is bounded: for a live camera the newest frame wins and
dropped frames are counted; for a file or folder the capture thread waits (nothing is lost).
A source that fails is reopened with exponential backoff; the thread keeps a heartbeat through
all of it so the daemon can tell "reconnecting" from "stuck in a blocking read".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.errors import SourceError
from edge.sources import Frame, FrameSource

log = logging.getLogger(__name__)

# frame -> (model input size (w, h), prepared RGB, milliseconds it took); a frame decodes only
# what that size needs (edge.view.Frame.prepare)
Prepare = Callable[[Frame], tuple[tuple[int, int], np.ndarray, float]]


@dataclass(frozen=True)
class Captured:
    """A frame plus its model input, prepared in the capture thread for ``size`` (w, h)."""

    frame: Frame
    size: tuple[int, int] | None
    prepared: np.ndarray | None
    prepare_ms: float = 0.0


class FrameQueue:
    """A bounded queue: ``newest`` drops the oldest item when full, ``block`` waits for room."""

    def __init__(self, maxsize: int, *, drop_oldest: bool) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[Captured] = deque()
        self._cond = threading.Condition()

    def put(self, item: Captured, stop: threading.Event, *, wait_s: float = 0.1) -> bool:
        """Queue ``item``; returns False only when ``stop`` was set while waiting for room."""
        with self._cond:
            if self.drop_oldest:
                if len(self._items) >= self.maxsize:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.maxsize:
                    if stop.is_set():
                        return False
                    self._cond.wait(wait_s)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> Captured | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def discard_all(self) -> int:
        """Empty the queue (e.g. frames nobody asked to inspect); returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self._cond.notify_all()
            return n

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class CaptureWorker:
    """Owns the source in its own thread: read, prepare, queue; reopen with backoff on failure."""

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        queue: FrameQueue,
        *,
        prepare: Prepare | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        on_status: Callable[[bool, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = source_factory
        self._queue = queue
        self._prepare = prepare
        self._backoff = (backoff_min_s, backoff_max_s)
        self._on_status = on_status
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat = clock()  # last sign of life (monotonic)
        self.online = False
        self.fault: str | None = None
        self.finished = threading.Event()  # the file/folder ended (not a failure)
        self.frames_read = 0
        # Who resizes: the capture thread (True) or the inference loop (False). The daemon
        # moves it to whichever thread has less of its own work (see ``balance_prepare``).
        self.prepare_here = True
        self.read_ms = 0.0  # moving average of source.read() (decode) time
        self._skipped = ""  # the last reason a frame was skipped (logged once)

    def balance_prepare(self, infer_ms: float, margin: float = 0.15) -> bool:
        """Put the resize where it shortens the slower stage; returns the new placement.

        Capture does read (+ resize), inference does invoke (+ resize). With read < invoke the
        resize belongs in capture (max(read + prep, invoke) is the smaller maximum), otherwise
        in the inference loop. ``margin`` keeps the placement from flapping on noise.
        """
        read = self.read_ms
        if self.prepare_here and read > infer_ms * (1 + margin):
            self.prepare_here = False
        elif not self.prepare_here and read < infer_ms * (1 - margin):
            self.prepare_here = True
        return self.prepare_here

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pi-inspect-capture", daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 2.0) -> None:
        """Ask the thread to end; a thread stuck in a blocking read is abandoned (daemon=True)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(join_s)
            if self._thread.is_alive():
                log.warning("capture thread did not stop within %.1f s (blocked read?)", join_s)

    def set_prepare(self, prepare: Prepare | None) -> None:
        self._prepare = prepare

    def _beat(self) -> None:
        self.heartbeat = self._clock()

    def _status(self, online: bool, fault: str | None) -> None:
        changed = online != self.online or fault != self.fault
        self.online, self.fault = online, fault
        if changed and self._on_status is not None:
            self._on_status(online, fault)

    def _wait(self, seconds: float) -> None:
        """Sleep in slices, heart-beating: reconnecting is healthy, being stuck is not."""
        end = self._clock() + seconds
        while not self._stop.is_set():
            left = end - self._clock()
            if left <= 0:
                return
            self._beat()
            self._stop.wait(min(0.25, left))

    def _run(self) -> None:
        delay = self._backoff[0]
        source: FrameSource | None = None
        try:
            while not self._stop.is_set():
                self._beat()
                try:
                    source = self._factory()
                    source.open()
                    if self.fault is not None:
                        log.info("camera online again (%s)", getattr(source, "name", "source"))
                    self._status(True, None)
                    if self._pump(source):
                        self.finished.set()
                        return
                    delay = self._backoff[0]
                except Exception as exc:  # noqa: BLE001 - any source failure is a camera fault
                    # (OpenCV raises OverflowError, cv2.error, ...): the thread must not die,
                    # or the station stays "starting" for ever.
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if not isinstance(exc, (SourceError, OSError, ValueError)):
                        reason = f"{type(exc).__name__}: {reason}"
                    fault = f"camera offline: {reason}"
                    if fault != self.fault:  # one line when it starts, not one per retry
                        log.warning("%s (retrying every %.1f-%.0f s)", fault, *self._backoff)
                    else:
                        log.debug("%s (retrying in %.1f s)", fault, delay)
                    self._status(False, fault)
                if source is not None:
                    source.close()
                    source = None
                self._wait(delay)
                delay = min(delay * 2, self._backoff[1])
        finally:
            if source is not None:
                source.close()

    def _pump(self, source: FrameSource) -> bool:
        """Read until stop (False) or the natural end of a file/folder (True)."""
        while not self._stop.is_set():
            t0 = time.monotonic()
            frame = source.read()
            self.read_ms += 0.05 * ((time.monotonic() - t0) * 1000.0 - self.read_ms)
            self._beat()
            if frame is None:
                return True
            self.frames_read += 1
            prepare = self._prepare if self.prepare_here else None
            try:
                item = Captured(frame, *prepare(frame)) if prepare else Captured(frame, None, None)
            except ValueError as exc:  # a corrupt JPEG frame: skip it, say so once per kind
                if str(exc) != self._skipped:
                    self._skipped = str(exc)
                    log.warning("skipping frame %d: %s", frame.index, exc)
                continue
            if not self._queue.put(item, self._stop):
                return False
            self._beat()
        return False
