"""Capture overlaps inference: a capture thread -> a bounded queue -> the inference loop.

The capture thread reads (and, when the ``Preparer`` says so, resizes) the next frame while the inference loop runs the
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

from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.sources import Frame, FrameSource

log = logging.getLogger(__name__)
UNUSABLE_PAUSE_S = 0.005  # after each unusable frame


@dataclass(frozen=True)
class Captured:
    """A frame plus its model input, prepared in the capture thread for ``size`` (w, h)."""

    frame: Frame
    size: tuple[int, int] | None
    prepared: np.ndarray | None
    prepare_ms: float = 0.0


class Preparer:
    """Owns the resize to the model's input size: where it runs, and doing it.

    The capture thread decodes (``read``), the inference loop invokes the model (``infer``);
    the resize (and colour conversion) can run on either side. Both sides report their own
    work per frame; every ``every`` inferred frames the resize moves to the side with less of
    it (``margin`` keeps it from flapping on noise). With read < infer the resize belongs in
    capture (max(read + resize, infer) is the smaller maximum), otherwise in the loop.
    ``read`` is the capture thread's CPU time, not the time a camera makes it wait for the
    next frame: a 30 FPS camera blocks ``read()`` for ~33 ms, which is no work at all.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, every: int = 32, margin: float = 0.15
    ) -> None:
        self._clock = clock
        self._every = every
        self._margin = margin
        self._size: tuple[int, int] | None = None
        self.in_capture = True  # where the resize runs now
        self.read_ms = 0.0  # moving averages of each side's own work per frame
        self.infer_ms = 0.0
        self._frames = 0

    def set_size(self, size: tuple[int, int] | None) -> None:
        """The model input size (w, h) for the model now loaded; None: no model."""
        self._size = tuple(size) if size is not None else None

    def capture(self, frame: Frame) -> Captured:
        """The capture thread's half: the frame, resized here if that is where it runs now."""
        size = self._size
        if not self.in_capture or size is None:
            return Captured(frame, None, None)
        t0 = self._clock()
        rgb = frame.prepare(size)  # decodes only what ``size`` needs (pi_inspect.edge.view.Frame)
        return Captured(frame, size, rgb, (self._clock() - t0) * 1000.0)

    def model_input(self, captured: Captured, size: tuple[int, int]) -> tuple[np.ndarray, float]:
        """The model input for ``size`` and the milliseconds spent on it in either thread."""
        if captured.prepared is not None and captured.size == tuple(size):
            return captured.prepared, captured.prepare_ms
        t0 = self._clock()
        rgb = captured.frame.prepare(size)
        return rgb, captured.prepare_ms + (self._clock() - t0) * 1000.0

    def record_read(self, ms: float) -> None:
        self.read_ms += 0.05 * (ms - self.read_ms)

    def record_infer(self, ms: float) -> None:
        """The loop's own work for one frame (invoke and bookkeeping, without the resize)."""
        self.infer_ms += 0.05 * (ms - self.infer_ms)
        self._frames += 1
        if self._frames % self._every == 0:
            self.rebalance()

    def rebalance(self) -> bool:
        """Put the resize where it shortens the slower stage; returns ``in_capture``."""
        read, infer, margin = self.read_ms, self.infer_ms, self._margin
        if self.in_capture and read > infer * (1 + margin):
            self.in_capture = False
        elif not self.in_capture and read < infer * (1 - margin):
            self.in_capture = True
        return self.in_capture


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
        preparer: Preparer | None = None,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 10.0,
        on_status: Callable[[bool, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        work_clock: Callable[[], float] = time.thread_time,
        stall_s: float | None = None,
    ) -> None:
        """``work_clock`` measures this thread's own work per read (CPU time by default).
        ``stall_s``: a source that yields no usable frame for this long (only corrupt,
        oversized or undecodable ones) is a failed source: reopened, and a camera fault."""
        self._factory = source_factory
        self._queue = queue
        self._preparer = preparer if preparer is not None else Preparer(clock=clock)
        self._backoff = (backoff_min_s, backoff_max_s)
        self._on_status = on_status
        self._clock = clock
        self._work_clock = work_clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat = clock()  # last sign of life (monotonic)
        self.online = False
        self.fault: str | None = None
        self.finished = threading.Event()  # the file/folder ended (not a failure)
        self.frames_read = 0
        self.unusable = 0  # frames read but not usable (corrupt, oversized), counted
        self._stall_s = stall_s
        self._skipped = ""  # the last reason a frame was skipped (logged once)

    def start(self, name: str = "pi-inspect-capture") -> None:
        """Capture on a thread named ``name`` (a station's: ``capture-<station>``)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, join_s: float = 2.0) -> None:
        """Ask the thread to end; a thread stuck in a blocking read is abandoned (daemon=True)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(join_s)
            if self._thread.is_alive():
                log.warning("capture thread did not stop within %.1f s (blocked read?)", join_s)

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
                    if self.fault is None:  # after a failure: online with its first usable frame
                        self._status(True, None)
                    if self._pump(source):
                        self._online_again(source)  # it ended as a file does: no failure
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
        usable_at = self._clock()
        while not self._stop.is_set():
            t0 = self._work_clock()
            try:
                frame = source.read()
                self._preparer.record_read((self._work_clock() - t0) * 1000.0)
                self._beat()
                if frame is None:
                    return True
                self.frames_read += 1
                item = self._preparer.capture(frame)
            except ValueError as exc:  # a corrupt or oversized frame: skip it, say so once
                self._unusable(exc, usable_at)
                continue
            if self.fault is not None:
                self._online_again(source)
            if not self._queue.put(item, self._stop):
                return False
            usable_at = self._clock()  # waiting for the queue (files, folders) is no stall
            self._beat()
        return False

    def _online_again(self, source: FrameSource) -> None:
        """A source that opened and did not fail again: a stream that opens but sends nothing
        usable stays one fault, not one per reconnect."""
        if self.fault is not None:
            log.info("camera online again (%s)", getattr(source, "name", "source"))
        self._status(True, None)

    def _unusable(self, exc: ValueError, usable_at: float) -> None:
        """Count a skipped frame; a source that gives nothing else for ``stall_s`` has failed."""
        self.unusable += 1
        self._beat()
        self._stop.wait(UNUSABLE_PAUSE_S)  # a source that fails at once must not spin a core
        if str(exc) != self._skipped:
            self._skipped = str(exc)
            log.warning("skipping a frame: %s", exc)
        quiet = self._clock() - usable_at
        if self._stall_s is not None and quiet >= self._stall_s:
            # the bound, not the seconds counted: the same fault reads the same on every retry
            raise SourceError(f"no usable frame for {self._stall_s:g} s (the last: {exc})")
