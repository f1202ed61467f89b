"""The inspection daemon: source -> pipeline -> classifier -> decisions -> signals, snapshots, outputs.

``Daemon`` wires the small modules together and owns the inference loop. Everything that
touches hardware or the outside world is injectable (source, outputs, pin factory, notifier,
classifier loader, clock) so tests and the demo run it in-process. It implements the
``Controller`` protocol (thread-safe) for outputs that take commands. Signal handling lives in
the CLI layer: ``run(stop)`` returns when ``stop`` is set or a file source ends.

Faults never end the daemon: a camera that fails is reopened with backoff, a missing or bad
bundle shows amber and is retried, and a bad bundle on reload is refused while the old one runs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import Config, ModelConfig, load_config
from edge.decide import Debouncer, make_rules
from edge.errors import ConfigError, PiInspectError
from edge.events import DefectEvent, FrameResult, State, Verdict
from edge.outputs import JsonLinesOutput, Output
from edge.pipeline import Captured, CaptureWorker, FrameQueue
from edge.preprocess import prepare
from edge.signals import Lamps, Signals, TriggerInput
from edge.snapshots import SnapshotStore
from edge.sources import FrameSource, make_source
from edge.stats import StatsWindow

log = logging.getLogger(__name__)

ClassifierLoader = Callable[[ModelConfig], Any]


def default_num_threads() -> int:
    """Interpreter threads when the config says none: all cores but one, which is left to the
    capture thread (decoding and resizing) so the two stages overlap instead of competing."""
    import os

    return max(1, (os.cpu_count() or 1) - 1)


def load_from_config(model: ModelConfig) -> Any:
    """The default loader: verify and load the configured bundle (None: the demo bundle)."""
    from edge.runtime import load_classifier

    threads = model.num_threads if model.num_threads is not None else default_num_threads()
    return load_classifier(model.bundle, backend=model.backend, num_threads=threads)


class _NullNotifier:
    def ready(self, status: str | None = None) -> None: ...
    def watchdog(self) -> None: ...
    def reloading(self, status: str | None = None) -> None: ...
    def stopping(self, status: str | None = None) -> None: ...
    def status(self, text: str) -> None: ...


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
    faults: deque[str] = field(default_factory=lambda: deque(maxlen=100))

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


class Daemon:
    """Runs one inspection station. Build it, then call ``run(stop_event)``."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | Path | None = None,
        overrides: Callable[[Config], Config] | None = None,
        source: FrameSource | None = None,
        source_factory: Callable[[], FrameSource] | None = None,
        outputs: Sequence[Output] | None = None,
        pin_factory: Any = None,
        notifier: Any = None,
        classifier_loader: ClassifierLoader = load_from_config,
        on_lamps: Callable[[Lamps], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._config_path = Path(config_path) if config_path is not None else None
        # Re-applied to the re-read file on reload, so --source/--bundle survive a SIGHUP.
        self._overrides = overrides
        if source is not None and source_factory is not None:
            raise ValueError("pass source or source_factory, not both")
        self._injected_source = source is not None or source_factory is not None
        self._injected_live: bool | None = getattr(source, "live", None)
        self._source_factory = source_factory or ((lambda: source) if source is not None else None)
        self._given_outputs = list(outputs) if outputs is not None else None
        self._pin_factory = pin_factory
        self._notifier = notifier if notifier is not None else _NullNotifier()
        self._loader = classifier_loader
        self._on_lamps = on_lamps
        self._clock = clock

        self._lock = threading.RLock()  # classifier, debouncer, latest frame
        self._reload_lock = threading.Lock()
        self._reload_requested = threading.Event()
        self._restart_capture = threading.Event()
        self.stop_event = threading.Event()

        self._classifier: Any = None
        self._debouncer: Debouncer | None = None
        self._model_fault: str | None = None
        self._next_model_retry = 0.0
        # latest inspected frame: (image, model input, prediction, scores, index)
        self._latest: tuple[np.ndarray, np.ndarray, Any, dict[str, float], int] | None = None
        self._event_snapshots: dict[str, str] = {}
        self._pending_triggers = 0
        self._trigger_after = 0.0
        self._infer_ms = 0.0  # moving average of the inference loop's own work per frame

        self._outputs: list[Output] = []
        self._signals: Signals | None = None
        self._trigger_input: TriggerInput | None = None
        self._snapshots: SnapshotStore | None = None
        self._capture: CaptureWorker | None = None
        self._queue: FrameQueue | None = None
        self._stats = StatsWindow()
        self._summary = RunSummary()
        self._state: State | None = None
        self._ready_sent = False
        self._camera_seen: tuple[bool, str | None] = (False, None)

    # -- Controller protocol (thread-safe) ---------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._classifier.labels) if self._classifier is not None else ()

    def trigger(self) -> None:
        """Inspect the next ``trigger.frames`` frames captured from now on."""
        with self._lock:
            self._pending_triggers = self._config.trigger.frames
            self._trigger_after = time.time()

    def request_snapshot(self) -> str | None:
        """Save the latest inspected frame (with the heat map of its top alarm label)."""
        with self._lock:
            latest, clf = self._latest, self._classifier
        if latest is None or self._snapshots is None or clf is None:
            return None
        image, rgb, prediction, scores, index = latest
        label = (
            max(self._debouncer.rules, key=lambda name: scores[name])
            if self._debouncer and self._debouncer.rules
            else None
        )
        heat = self._heatmap(clf, prediction, rgb, label) if label else None
        meta = {
            "request": "snapshot",
            "frame_index": index,
            "scores": scores,
            "model_sha256": clf.info.sha256,
        }
        saved = self._snapshots.save(image, heat, meta, tag="request")
        return saved.name if saved is not None else None

    def reload(self) -> bool:
        """Reload config (if from a file) and bundle; anything bad is refused, the old one runs."""
        with self._reload_lock:
            self._notifier.reloading("reloading config and bundle")
            ok = self._reload()
            status = "reloaded" if ok else "reload refused; old model still running"
            self._notifier.ready(status=status)
            return ok

    def request_reload(self) -> None:
        """Signal-handler safe: the inference loop reloads on its next iteration."""
        self._reload_requested.set()

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]:
        with self._lock:
            if self._debouncer is None:
                raise PiInspectError("no model loaded")
            self._debouncer.set_thresholds(thresholds)
            return {label: rule.threshold for label, rule in self._debouncer.rules.items()}

    # -- run ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> RunSummary:
        """Run until ``stop`` is set (or a file/folder source ends). Never raises on a fault."""
        stop = stop if stop is not None else self.stop_event
        started = self._clock()
        self._started = started
        try:
            self._open_outputs()
            self._open_signals()
            self._open_snapshots()
            self._try_load_model()
            self._start_capture()
            self._update_state()
            next_stats = started + self._config.output.stats_interval_s
            while not stop.is_set():
                self._iterate()
                now = self._clock()
                if now >= next_stats:
                    next_stats = now + self._config.output.stats_interval_s
                    self._publish_stats()
                capture = self._capture
                if (
                    capture is not None
                    and capture.finished.is_set()
                    and len(self._queue or ()) == 0
                ):
                    break
        finally:
            self._shutdown(started)
        return self._summary

    def _iterate(self) -> None:
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()
        if self._restart_capture.is_set():
            self._restart_capture.clear()
            self._stop_capture()
            self._start_capture()
        if self._classifier is None and self._clock() >= self._next_model_retry:
            self._try_load_model()
        item = self._queue.get(timeout=0.1) if self._queue is not None else None
        if self._capture_healthy():
            self._notifier.watchdog()
        if item is not None:
            self._inspect(item)
        self._check_camera()
        if (
            not self._ready_sent
            and self._classifier is not None
            and self._capture is not None
            and self._capture.online
        ):
            self._ready_sent = True
            self._notifier.ready(status="inspecting")

    def _capture_healthy(self) -> bool:
        capture = self._capture
        if capture is None:
            return False
        return self._clock() - capture.heartbeat < self._config.pipeline.heartbeat_timeout_s

    # -- inference ---------------------------------------------------------------------------
    def _should_inspect(self, captured: Captured) -> bool:
        if self._config.trigger.mode == "continuous":
            return True
        with self._lock:
            if self._pending_triggers > 0 and captured.frame.timestamp >= self._trigger_after:
                self._pending_triggers -= 1
                return True
        return False

    def _inspect(self, captured: Captured) -> None:
        if not self._should_inspect(captured):
            return
        frame = captured.frame
        with self._lock:
            clf, debouncer = self._classifier, self._debouncer
            if clf is None or debouncer is None:
                return
            t0 = self._clock()
            rgb = captured.prepared
            if rgb is None or captured.size != tuple(clf.input_size):
                rgb = prepare(frame.image, clf.input_size)
            t_invoke = time.monotonic()
            try:
                # No feature map on ordinary frames (fetching and dequantizing it costs time
                # on every frame); a snapshot asks for it again on the same input (_heatmap).
                prediction = clf.predict(rgb, with_features=False)
            except (ValueError, RuntimeError, PiInspectError) as exc:
                self._fault_once(f"inference failed: {exc}")
                return
            done = self._clock()
            latency_ms = (done - t0) * 1000.0 + captured.prepare_ms
            scores = {
                label: float(s) for label, s in zip(clf.labels, prediction.scores, strict=True)
            }
            events = debouncer.update(frame.index, frame.timestamp, scores)
            active = debouncer.active
            self._latest = (frame.image, rgb, prediction, scores, frame.index)
        self._stats.record(latency_ms, done)
        self._summary.frames += 1
        if self._summary.first_inference_s is None:
            self._summary.first_inference_s = done - self._started
        for event in events:
            self._emit(event, clf, prediction, frame.image, scores, rgb)
        result = FrameResult(frame.index, frame.timestamp, scores, round(latency_ms, 3), active)
        for out in self._outputs:
            out.publish_result(result)
        self._update_state(new_defect=any(e.kind == "start" for e in events))
        self._balance(t_invoke)

    def _balance(self, t_invoke: float) -> None:
        """Track this loop's own work per frame (invoke and bookkeeping, without the resize)
        and every 32 frames let the capture worker move the resize to the less busy thread."""
        self._infer_ms += 0.05 * ((time.monotonic() - t_invoke) * 1000.0 - self._infer_ms)
        capture = self._capture
        if capture is not None and self._summary.frames % 32 == 0:
            capture.balance_prepare(self._infer_ms)

    def _emit(
        self,
        event: DefectEvent,
        clf: Any,
        prediction: Any,
        image: np.ndarray,
        scores: dict[str, float],
        rgb: np.ndarray | None = None,
    ) -> None:
        if event.kind == "start" and self._snapshots is not None:
            heat = self._heatmap(clf, prediction, rgb, event.label)
            meta = {
                "event": event.to_dict(),
                "scores": scores,
                "model_sha256": clf.info.sha256,
                "model": clf.info.name,
                "model_version": clf.info.version,
            }
            saved = self._snapshots.save(image, heat, meta, tag=event.label)
            if saved is not None:  # else the store's health says why (a fault while it lasts)
                event = replace(event, snapshot=saved.name)
                self._event_snapshots[event.event_id] = saved.name
                for out in self._outputs:
                    out.publish_snapshot(saved.jpeg, event)
        elif event.kind == "end":
            event = replace(event, snapshot=self._event_snapshots.pop(event.event_id, None))
            self._summary.events.append(event)
        for out in self._outputs:
            out.publish_event(event)

    def _heatmap(
        self, clf: Any, prediction: Any, rgb: np.ndarray | None, label: str
    ) -> np.ndarray | None:
        """Grad-CAM for ``label``; re-runs the model with its feature map on the same input
        (the inference loop skips features on ordinary frames; events are rare)."""
        if not getattr(clf, "has_heatmaps", True) or prediction is None:
            return None
        try:
            if prediction.features is None:
                if rgb is None:
                    return None
                with self._lock:  # the classifier is not thread-safe
                    prediction = clf.predict(rgb, with_features=True)
                if prediction.features is None:
                    return None
            return clf.heatmap(prediction, label)
        except (PiInspectError, ValueError, RuntimeError) as exc:
            log.debug("no heat map: %s", exc)
            return None

    # -- model -------------------------------------------------------------------------------
    def _build_debouncer(self, clf: Any, config: Config) -> Debouncer:
        rules = make_rules(clf.labels, clf.thresholds, clf.alarms, config.model.thresholds)
        d = config.decide
        return Debouncer(rules, k=d.k, n=d.n, m=d.m, model_sha256=clf.info.sha256)

    def _load(self, config: Config) -> tuple[Any, Debouncer]:
        clf = self._loader(config.model)
        try:
            return clf, self._build_debouncer(clf, config)
        except ValueError as exc:
            clf.close()
            raise PiInspectError(f"model.thresholds: {exc}") from None

    def _try_load_model(self) -> None:
        try:
            clf, debouncer = self._load(self._config)
        except (PiInspectError, OSError) as exc:
            reason = f"no model: {str(exc).splitlines()[0]}"
            if reason != self._model_fault:
                log.error(
                    "%s (retrying every %.0f s or on SIGHUP)", reason, self._config.model.retry_s
                )
            self._model_fault = reason
            self._summary.faults.append(reason)
            self._next_model_retry = self._clock() + self._config.model.retry_s
            return
        with self._lock:
            self._classifier, self._debouncer = clf, debouncer
        self._model_fault = None
        self._set_prepare(clf)
        self._summary.model = _describe(clf)
        log.info("model %s loaded", self._summary.model)

    def _set_prepare(self, clf: Any) -> None:
        if self._capture is not None:
            self._capture.set_prepare(_preparer(tuple(clf.input_size)))

    def _reload(self) -> bool:
        config = self._config
        if self._config_path is not None:
            try:
                config = load_config(self._config_path)
                if self._overrides is not None:
                    config = self._overrides(config)
            except ConfigError as exc:
                log.error("reload refused: %s: %s", exc, "; ".join(exc.problems))
                return False
        try:
            clf, debouncer = self._load(config)
        except (PiInspectError, OSError) as exc:
            log.error("reload refused, keeping the old model: %s", str(exc).splitlines()[0])
            return False
        with self._lock:
            ended = self._debouncer.flush() if self._debouncer is not None else []
            old, self._classifier, self._debouncer = self._classifier, clf, debouncer
            source_changed = config.source != self._config.source
            if config.gpio != self._config.gpio or config.mqtt != self._config.mqtt:
                log.warning("gpio/mqtt changes take effect after a restart")
            self._config = config
        self._model_fault = None
        for event in ended:
            self._emit(event, old, None, np.zeros((1, 1, 3), np.uint8), {})
        self._set_prepare(clf)
        if old is not None:
            old.close()
        if source_changed and not self._injected_source:
            self._restart_capture.set()
        self._summary.model = _describe(clf)
        log.info("reloaded: model %s", self._summary.model)
        self._update_state()
        return True

    # -- state, signals, stats ---------------------------------------------------------------
    def _fault_once(self, message: str) -> None:
        if not self._summary.faults or self._summary.faults[-1] != message:
            log.warning("%s", message)
            self._summary.faults.append(message)

    def _current_fault(self) -> str | None:
        faults = [f for f in (self._model_fault, self._camera_fault()) if f]
        return "; ".join(faults) if faults else None

    def _camera_fault(self) -> str | None:
        capture = self._capture
        if capture is None or capture.online:
            return None
        return capture.fault  # None while the first open is still under way

    def _check_camera(self) -> None:
        capture = self._capture
        if capture is None:
            return
        seen = (capture.online, capture.fault)
        if seen != self._camera_seen:
            self._camera_seen = seen
            if capture.fault:
                self._summary.faults.append(capture.fault)
            self._update_state()

    def _update_state(self, *, new_defect: bool = False) -> None:
        fault = self._current_fault()
        with self._lock:
            active = self._debouncer.active if self._debouncer is not None else ()
            info = self._classifier.info if self._classifier is not None else None
        verdict: Verdict = "fault" if fault else ("defect" if active else "ok")
        if not fault and (self._capture is None or not self._capture.online):
            verdict = "starting"
        if self._signals is not None and verdict != "starting":
            self._signals.show(fault=fault is not None, defect=bool(active), new_defect=new_defect)
        old = self._state
        if old is not None and (old.verdict, old.active, old.fault, old.model) == (
            verdict,
            active,
            fault,
            info,
        ):
            return
        self._state = State(verdict, active, info, time.time(), fault)
        for out in self._outputs:
            out.publish_state(self._state)

    def _publish_stats(self) -> None:
        capture = self._capture
        stats = self._stats.snapshot(
            dropped=self._queue.dropped if self._queue is not None else 0,
            uptime_s=self._clock() - self._started,
            camera_online=bool(capture and capture.online),
        )
        for out in self._outputs:
            out.publish_stats(stats)

    # -- set-up and tear-down ----------------------------------------------------------------
    def _open_outputs(self) -> None:
        if self._given_outputs is not None:
            self._outputs = list(self._given_outputs)
            return
        if self._config.output.stdout:
            self._outputs.append(JsonLinesOutput(sys.stdout, results=self._config.output.results))
        if getattr(self._config.mqtt, "enabled", False):
            from edge.mqtt import make_output

            self._outputs.append(
                make_output(self._config.mqtt, self, self._config.resolved_state_dir())
            )

    def _open_signals(self) -> None:
        gpio = self._config.gpio
        if gpio.enabled:
            self._signals = Signals(gpio, self._pin_factory, on_change=self._on_lamps)
        if self._config.trigger.mode == "gpio":
            self._trigger_input = TriggerInput(
                self._config.trigger, self.trigger, self._pin_factory, factory_name=gpio.pin_factory
            )

    def _open_snapshots(self) -> None:
        snap = self._config.snapshots
        if not snap.enabled:
            return
        self._snapshots = SnapshotStore(
            self._config.snapshot_dir(),
            max_count=snap.max_count,
            max_bytes=snap.max_bytes,
            max_age_s=snap.max_age_s,
            min_free_bytes=snap.min_free_bytes,
            jpeg_quality=snap.jpeg_quality,
        )
        self._snapshots.prune()

    def _start_capture(self) -> None:
        config = self._config
        factory = self._source_factory or (lambda: make_source(config.source))
        drop = config.pipeline.drop
        if drop == "auto":
            live = self._injected_live
            live = live if live is not None else _config_is_live(config)
            drop = "newest" if live else "block"
        self._queue = FrameQueue(config.pipeline.queue, drop_oldest=drop == "newest")
        with self._lock:
            clf = self._classifier
        self._capture = CaptureWorker(
            factory,
            self._queue,
            prepare=_preparer(tuple(clf.input_size)) if clf is not None else None,
            backoff_min_s=config.source.reconnect_min_s,
            backoff_max_s=config.source.reconnect_max_s,
            clock=self._clock,
        )
        self._capture.start()

    def _stop_capture(self) -> None:
        if self._capture is not None:
            self._capture.stop()
            self._summary.frames_read += self._capture.frames_read
            self._summary.dropped += self._queue.dropped if self._queue is not None else 0
            self._capture = None

    def _shutdown(self, started: float) -> None:
        """LEDs off, open defects ended, outputs flushed. Each step runs even if one fails."""
        self._notifier.stopping("shutting down")
        capture_finished = self._capture is not None and self._capture.finished.is_set()
        self._stop_capture()
        with self._lock:
            ended = self._debouncer.flush() if self._debouncer is not None else []
            clf = self._classifier
        for event in ended:
            self._emit(event, clf, None, np.zeros((1, 1, 3), np.uint8), {})
        self._summary.elapsed_s = self._clock() - started
        p50, p95 = self._stats.latency_percentiles()
        self._summary.latency_p50_ms, self._summary.latency_p95_ms = p50, p95
        if self._stats.frames:
            self._publish_stats()
        if capture_finished:
            log.info("source ended after %d frames", self._summary.frames_read)
        for closer in (self._trigger_input, self._signals, *self._outputs):
            if closer is None:
                continue
            try:
                closer.close()
            except Exception as exc:  # shutdown goes on: the LEDs must go off regardless
                log.warning("closing %s: %s", type(closer).__name__, exc)
        with self._lock:
            if self._classifier is not None:
                self._classifier.close()
                self._classifier = None


def _describe(clf: Any) -> str:
    info = clf.info
    w, h = clf.input_size
    return f"{info.name} {info.version} ({info.sha256[:12]}, {w}x{h} input)"


def _config_is_live(config: Config) -> bool:
    from edge.sources import resolve_kind

    return resolve_kind(config.source) in ("usb", "picamera2", "stream")


def _preparer(
    size: tuple[int, int],
) -> Callable[[np.ndarray], tuple[tuple[int, int], np.ndarray, float]]:
    """The capture thread's half of the work: resize + colour for the current model size."""
    from edge.preprocess import prepare

    def run(image: np.ndarray) -> tuple[tuple[int, int], np.ndarray, float]:
        t0 = time.monotonic()
        rgb = prepare(image, size)
        return size, rgb, (time.monotonic() - t0) * 1000.0

    return run
