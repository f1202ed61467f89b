"""The inference loop: reload/retry -> next frame -> inspect -> status -> dispatch, until stopped.

Also the systemd watchdog (pinged only while the capture thread's heartbeat is fresh), the
camera fault (set while the capture worker is offline), periodic stats and an orderly shutdown.
Signal handling lives in the CLI layer: ``run(stop)`` returns when ``stop`` is set or a file
source ends, and never raises on a fault.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pi_inspect.edge.config import Config
from pi_inspect.edge.daemon.dispatch import Dispatcher
from pi_inspect.edge.daemon.inspector import Inspector
from pi_inspect.edge.daemon.model import ModelSlot
from pi_inspect.edge.daemon.protocols import Notifier
from pi_inspect.edge.daemon.status import Status, fold_health
from pi_inspect.edge.errors import ConfigError, PiInspectError
from pi_inspect.edge.events import DefectEvent
from pi_inspect.edge.health import POLL_S
from pi_inspect.edge.outputs import Closeable, changed_keys
from pi_inspect.edge.outputs.registry import plugins
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.pipeline import CaptureWorker, FrameQueue, Preparer
from pi_inspect.edge.sources import FrameSource
from pi_inspect.edge.stats import StatsWindow, read_cpu_temp_c

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did; the demo and the benches print it."""

    frames: int = 0  # frames inferred
    frames_read: int = 0
    dropped: int = 0
    elapsed_s: float = 0.0
    first_inference_s: float | None = None  # from run() start
    model: str = ""  # name, version and hash prefix of the model that ran last
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0
    events: deque[DefectEvent] = field(default_factory=lambda: deque(maxlen=10_000))  # "end" ones
    parts: deque[PartResult] = field(default_factory=lambda: deque(maxlen=10_000))
    faults: deque[str] = field(default_factory=lambda: deque(maxlen=100))

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Loop:
    """Runs the parts ``pi_inspect.edge.daemon.app`` assembled. ``reload`` is thread-safe."""

    def __init__(
        self,
        config: Config,
        *,
        slot: ModelSlot,
        inspector: Inspector,
        status: Status,
        dispatcher: Dispatcher,
        preparer: Preparer,
        notifier: Notifier,
        source_factory: Callable[[Config], FrameSource],
        live: Callable[[Config], bool],
        reread: Callable[[], Config] | None,
        summary: RunSummary,
        fixed_source: bool = False,
        clock: Callable[[], float] = time.monotonic,
        name: str = "default",
    ) -> None:
        self.config, self._name = config, name  # a station's capture thread is named after it
        self._slot, self._inspector, self._status = slot, inspector, status
        self._dispatcher, self._preparer, self._notifier = dispatcher, preparer, notifier
        self._source_factory, self._live, self._reread = source_factory, live, reread
        self._summary, self._clock = summary, clock
        self._fixed_source = fixed_source  # an injected source survives a [source] change
        self._reload_lock = threading.Lock()
        self._reload_requested, self._restart_capture = threading.Event(), threading.Event()
        self._capture: CaptureWorker | None = None
        self._queue: FrameQueue | None = None
        self._stats, self._started = StatsWindow(), clock()
        self._ready_sent, self._status_sent = False, None  # what systemd was told
        self._health_stats: dict[str, object] = {}  # the polled parts' numbers, for stats
        self._next_health = float("-inf")

    # -- running ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, closers: Sequence[Closeable] = ()) -> RunSummary:
        self._started = self._clock()
        try:
            self._slot.try_load(self.config)
            self._summary.model = self._slot.description
            self._start_capture()
            self._show()
            interval = self.config.output.stats_interval_s
            next_stats = self._started + interval
            while not stop.is_set():
                self._iterate()
                now = self._clock()
                if now >= next_stats:
                    next_stats = now + interval
                    self._publish_stats()
                capture = self._capture
                if capture is not None and capture.finished.is_set() and not self._queue:
                    break
        finally:
            self._shutdown(closers)
        return self._summary

    def _iterate(self) -> None:
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()
        if self._restart_capture.is_set():
            self._restart_capture.clear()
            self._stop_capture()
            self._start_capture()
        if self._slot.retry_due() and self._slot.try_load(self.config):
            self._summary.model = self._slot.description
            self._preparer.set_size(self._slot.classifier.input_size)
        item = self._queue.get(timeout=0.1) if self._queue is not None else None
        if self._capture_healthy():
            self._notifier.watchdog()
        new_defect = False
        if item is not None:
            t0 = self._clock()
            inspection = self._inspector.step(item)
            self._dispatcher.live(item.frame, inspection)
            if inspection is not None:
                for event in self._dispatcher.inspection(inspection):
                    if event.kind == "end":
                        self._summary.events.append(event)
                new_defect = inspection.new_defect
                self._count(inspection.result.latency_ms, t0)
                dispatch_ms = (self._clock() - t0) * 1000.0 - inspection.result.latency_ms
                self._preparer.record_infer(inspection.work_ms + max(0.0, dispatch_ms))
        self._send_parts(expire=not self._queue)  # a queued frame may still be a part's
        self._poll_health()
        self._show(new_defect)
        self._tell_service_manager()

    def _tell_service_manager(self) -> None:
        """READY=1 as soon as the loop runs, faults included (else systemd kills a station
        whose camera is unplugged at boot); STATUS= says what is wrong, when it changes."""
        status = self._status.faults.message()
        if status is None:
            status = "inspecting" if self._online() else "starting: opening the camera"
        if not self._ready_sent:
            self._ready_sent = True
            self._notifier.ready(status=status)
        elif status != self._status_sent:
            self._notifier.status(status)
        self._status_sent = status

    def _count(self, latency_ms: float, t0: float) -> None:
        done = self._clock()
        self._stats.record(latency_ms, done)
        self._summary.frames += 1
        if self._summary.first_inference_s is None:
            self._summary.first_inference_s = done - self._started

    def _send_parts(self, expire: bool = True) -> None:
        self._summary.parts.extend(self._dispatcher.parts(self._inspector.drain_parts(expire)))

    def _online(self) -> bool:
        return self._capture is not None and self._capture.online

    def _capture_healthy(self) -> bool:
        capture = self._capture
        if capture is None:
            return False
        return self._clock() - capture.heartbeat < self.config.pipeline.heartbeat_timeout_s

    def _poll_health(self) -> None:
        """Every ``POLL_S``: the parts that keep their own health -> faults and stats."""
        now = self._clock()
        if now >= self._next_health:
            self._next_health = now + POLL_S
            self._health_stats = fold_health(self._dispatcher.reporters(), self._status.faults)

    def _show(self, new_defect: bool = False) -> None:
        state = self._status.update(
            model=self._slot.info,
            active=self._slot.active,
            camera_online=self._online(),
            new_defect=new_defect,
            rules=self._slot.rules(),
        )
        self._dispatcher.state(state)

    def _publish_stats(self) -> None:
        stats = self._stats.snapshot(
            dropped=self._queue.dropped if self._queue is not None else 0,
            uptime_s=self._clock() - self._started,
            camera_online=self._online(),
            cpu_temp_c=read_cpu_temp_c(),
            **({"unusable_frames": n} if (n := getattr(self._capture, "unusable", 0)) else {}),
            **self._health_stats,
            **({"model_invoke_ms": cost} if (cost := self._slot.cost()) else {}),
        )
        self._dispatcher.stats(stats)

    # -- reload -------------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Signal-handler safe: the loop reloads on its next iteration."""
        self._reload_requested.set()

    def reload(self) -> bool:
        """Re-read the config (if from a file) and reload the bundle; anything bad is refused."""
        with self._reload_lock:
            self._notifier.reloading("reloading config and bundle")
            ok = self._reload()
            status = "reloaded" if ok else "reload refused; old model still running"
            self._notifier.ready(status=status)
            return ok

    def _reload(self) -> bool:
        config = self.config
        if self._reread is not None:
            try:
                config = self._reread()
            except ConfigError as exc:
                log.error("reload refused: %s: %s", exc, "; ".join(exc.problems))
                return False
        try:
            clf, debouncer = self._slot.build(config)
        except (PiInspectError, OSError) as exc:
            log.error("reload refused, keeping the old model: %s", str(exc).splitlines()[0])
            return False
        for section, keys in restart_needed(self.config, config).items():
            log.warning("%s: %s take effect after a restart", section, ", ".join(keys))
        source_changed = config.source != self.config.source
        self.config = config
        self._inspector.configure(config.trigger, config.collect, config.shadow, config.drift)
        ended = self._slot.swap(clf, debouncer)
        self._summary.events.extend(e for e in self._dispatcher.events(ended) if e.kind == "end")
        self._preparer.set_size(clf.input_size)
        if source_changed and not self._fixed_source:
            self._restart_capture.set()
        self._summary.model = self._slot.description
        log.info("reloaded: model %s", self._summary.model)
        self._slot.warn_views(config.source)
        self._show()
        return True

    # -- capture ------------------------------------------------------------------------------
    def _start_capture(self) -> None:
        config = self.config
        drop = config.pipeline.drop
        if drop == "auto":
            drop = "newest" if self._live(config) else "block"
        self._queue = FrameQueue(config.pipeline.queue, drop_oldest=drop == "newest")
        clf = self._slot.classifier
        self._preparer.set_size(clf.input_size if clf is not None else None)
        self._capture = CaptureWorker(
            lambda: self._source_factory(config),
            self._queue,
            preparer=self._preparer,
            backoff_min_s=config.source.reconnect_min_s,
            backoff_max_s=config.source.reconnect_max_s,
            on_status=self._status.camera,
            clock=self._clock,
            stall_s=config.pipeline.heartbeat_timeout_s,
        )
        self._capture.start(f"capture-{self._name}")

    def _stop_capture(self) -> None:
        if self._capture is not None:
            self._capture.stop()
            self._summary.frames_read += self._capture.frames_read
            self._summary.dropped += self._queue.dropped if self._queue is not None else 0
            self._capture = None

    # -- shutdown -----------------------------------------------------------------------------
    def _shutdown(self, closers: Sequence[Closeable]) -> None:
        """LEDs off, open defects ended, outputs flushed. Each step runs even if one fails."""
        self._notifier.stopping("shutting down")
        capture_finished = self._capture is not None and self._capture.finished.is_set()
        self._stop_capture()
        ended = self._dispatcher.events(self._slot.flush())
        self._summary.events.extend(e for e in ended if e.kind == "end")
        self._inspector.parts.stop("the station stopped before a frame came")
        self._send_parts()
        self._summary.elapsed_s = self._clock() - self._started
        p50, p95 = self._stats.latency_percentiles()
        self._summary.latency_p50_ms, self._summary.latency_p95_ms = p50, p95
        if self._stats.frames:
            self._next_health = float("-inf")  # the parts' last word, in the last stats line
            self._poll_health()
            self._publish_stats()
        if capture_finished:
            log.info("source ended after %d frames", self._summary.frames_read)
        for closer in (*closers, self._status):
            try:
                closer.close()
            except Exception as exc:  # shutdown goes on: the LEDs must go off regardless
                log.warning("closing %s: %s", type(closer).__name__, exc)
        self._send_parts()  # triggers that came while closing: missed, and said so
        self._dispatcher.close()
        self._slot.close()


def restart_needed(old: Config, new: Config) -> dict[str, tuple[str, ...]]:
    """Per section, the changed keys a reload cannot apply: GPIO's pins, the trigger input,
    reject timing and every output plugin's keys that its plugin says need a restart."""
    found: dict[str, tuple[str, ...]] = {}
    for name in ("gpio", "device", "reject"):  # pins, name and reject timing: read at start
        if keys := changed_keys(getattr(old, name), getattr(new, name)):
            found[name] = keys
    pin_keys = ("pin", "pull_up", "bounce_s")  # the trigger input is opened once, too
    trigger = tuple(k for k in changed_keys(old.trigger, new.trigger) if k in pin_keys)
    if (old.trigger.mode == "gpio") != (new.trigger.mode == "gpio"):
        trigger = ("mode", *trigger)
    if trigger:
        found["trigger"] = trigger
    for name, plugin in plugins().items():
        keys = plugin.needs_restart(getattr(old, name), getattr(new, name))
        if keys:
            found[name] = keys
    return found
