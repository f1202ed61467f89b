"""The model slot: the classifier and its debouncer, loaded, retried, reloaded and swapped
together under one lock (the classifier is not thread-safe; commands arrive on other threads).

A missing or bad bundle is the ``model`` fault, retried every ``model.retry_s``; a bad bundle on
reload is refused and the old model keeps running. Swapping or closing the slot ends the open
defects: ``swap`` and ``flush`` return those ``end`` events, they do not send them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edge.config import Config, ModelConfig
from edge.daemon.protocols import Classifier, Prediction
from edge.daemon.status import Faults
from edge.decide import Debouncer, Rule, make_rules
from edge.errors import PiInspectError
from edge.events import DefectEvent, ModelInfo
from edge.view import warn_if_view_differs

log = logging.getLogger(__name__)

ClassifierLoader = Callable[[ModelConfig], Classifier]
FAULT = "model"


def default_num_threads() -> int:
    """Interpreter threads when the config says none: all cores but one, which is left to the
    capture thread (decoding and resizing) so the two stages overlap instead of competing."""
    import os

    return max(1, (os.cpu_count() or 1) - 1)


def load_from_config(model: ModelConfig) -> Classifier:
    """The default loader: verify and load the configured bundle (None: the demo bundle)."""
    from edge.runtime import load_classifier

    threads = model.num_threads if model.num_threads is not None else default_num_threads()
    return load_classifier(model.bundle, backend=model.backend, num_threads=threads)


def describe(clf: Classifier) -> str:
    info = clf.info
    w, h = clf.input_size
    return f"{info.name} {info.version} ({info.sha256[:12]}, {w}x{h} input)"


class ModelSlot:
    """Holds at most one classifier + debouncer. Thread-safe; ``lock`` guards both."""

    def __init__(
        self,
        loader: ClassifierLoader,
        faults: Faults,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.RLock()
        self._loader = loader
        self._faults = faults
        self._clock = clock
        self.classifier: Classifier | None = None
        self.debouncer: Debouncer | None = None
        self.info: ModelInfo | None = None  # with the model's labels
        self.description = ""  # name, version, hash prefix and input size, for logs
        self._next_retry = 0.0

    # -- loading ------------------------------------------------------------------------------
    def build(self, config: Config) -> tuple[Classifier, Debouncer]:
        """Load the configured model and its debouncer; raises ``PiInspectError``/``OSError``."""
        clf = self._loader(config.model)
        try:
            rules = make_rules(
                clf.labels, clf.thresholds, clf.alarms, config.model.thresholds, clf.meanings
            )
        except ValueError as exc:
            clf.close()
            raise PiInspectError(f"model.thresholds: {exc}") from None
        d = config.decide
        return clf, Debouncer(rules, k=d.k, n=d.n, m=d.m, model_sha256=clf.info.sha256)

    def retry_due(self) -> bool:
        """No model, and the retry interval since the last failure has passed."""
        return self.classifier is None and self._clock() >= self._next_retry

    def try_load(self, config: Config) -> bool:
        """Load into an empty slot; a failure is the ``model`` fault, retried later."""
        try:
            clf, debouncer = self.build(config)
        except (PiInspectError, OSError) as exc:
            self._faults.set(FAULT, f"no model: {str(exc).splitlines()[0]}")
            self._next_retry = self._clock() + config.model.retry_s
            return False
        self.swap(clf, debouncer)
        log.info("model %s loaded", self.description)
        warn_if_view_differs(clf, config.source)
        return True

    def input_size(self) -> tuple[int, int] | None:
        """The loaded model's input (w, h); a camera with a small stream sizes it for this."""
        clf = self.classifier
        return tuple(clf.input_size) if clf is not None else None

    def swap(self, clf: Classifier, debouncer: Debouncer) -> list[DefectEvent]:
        """Put a new model in; closes the old one and returns the defects it had open."""
        with self.lock:
            ended = self.debouncer.flush() if self.debouncer is not None else []
            old = self.classifier
            self.classifier, self.debouncer = clf, debouncer
            self.info = replace(
                clf.info,
                labels=tuple(clf.labels),
                meanings=tuple((k, m.alarm, m.meaning) for k, m in clf.meanings.items()),
            )
            self.description = describe(clf)
        self._faults.clear(FAULT)
        if old is not None:
            old.close()
        return ended

    # -- while running -------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        with self.lock:
            return self.info.labels if self.info is not None else ()

    @property
    def active(self) -> tuple[str, ...]:
        with self.lock:
            return self.debouncer.active if self.debouncer is not None else ()

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]:
        """Override thresholds of the running model; returns every threshold now in force."""
        with self.lock:
            if self.debouncer is None:
                raise PiInspectError("no model loaded")
            self.debouncer.set_thresholds(thresholds)
            return {label: rule.threshold for label, rule in self.debouncer.rules.items()}

    def rules(self) -> dict[str, Rule]:
        """The per-label rules in force (threshold and direction); empty without a model."""
        with self.lock:
            return dict(self.debouncer.rules) if self.debouncer is not None else {}

    def top_alarm_label(self, scores: dict[str, float]) -> str | None:
        """The alarm label nearest to (or furthest past) its threshold, in its alarm direction:
        the heat map a requested snapshot or a live viewer shows. (The highest score would pick
        ``length`` on every good frame: it alarms below its threshold.)"""
        with self.lock:
            rules = dict(self.debouncer.rules) if self.debouncer is not None else {}

        def margin(name: str) -> float:
            rule = rules[name]
            gap = scores[name] - rule.threshold
            return gap if rule.direction == "above" else -gap

        known = [name for name in rules if name in scores]
        return max(known, key=margin) if known else None

    def heatmap(
        self, clf: Classifier, prediction: Prediction, rgb: np.ndarray, label: str
    ) -> np.ndarray | None:
        """Grad-CAM for ``label``; re-runs ``clf`` with its feature map on the same input
        (ordinary frames skip the feature map; events are rare). None when it has none."""
        if not clf.has_heatmaps:
            return None
        try:
            if prediction.features is None:
                with self.lock:
                    if clf is not self.classifier:
                        return None  # swapped out (and closed) since this frame
                    prediction = clf.predict(rgb, with_features=True)
                if prediction.features is None:
                    return None
            return clf.heatmap(prediction, label)
        except (PiInspectError, ValueError, RuntimeError) as exc:
            log.debug("no heat map: %s", exc)
            return None

    # -- the end ------------------------------------------------------------------------------
    def flush(self) -> list[DefectEvent]:
        """End every open defect now (reload, shutdown); returns those ``end`` events."""
        with self.lock:
            return self.debouncer.flush() if self.debouncer is not None else []

    def close(self) -> None:
        with self.lock:
            if self.classifier is not None:
                self.classifier.close()
            self.classifier = self.debouncer = None
