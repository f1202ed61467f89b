"""The model slot: the classifier and its debouncer, loaded, retried, reloaded and swapped
together under one lock (the classifier is not thread-safe; commands arrive on other threads).

With ``anomaly.bundle`` set the slot's model is a ``ModelPair`` of two parts, ``model`` and
``anomaly``, each loaded and retried on its own: a missing or bad bundle is its part's fault
(``model``, ``anomaly_model``), retried every ``model.retry_s``, while the other part inspects
alone; a part that comes back joins without ending the other's open defects. A reload loads
every configured bundle or refuses and keeps the old model running. Swapping or closing the slot
ends the open defects: ``swap`` and ``flush`` return those ``end`` events, they do not send them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from pi_inspect.edge.config import Config, ModelConfig
from pi_inspect.edge.daemon.pair import ANOMALY, CLASSIFIER, ModelPair, parts_of
from pi_inspect.edge.daemon.protocols import Classifier, Prediction
from pi_inspect.edge.daemon.status import Faults
from pi_inspect.edge.decide import Debouncer, Rule, make_rules
from pi_inspect.edge.errors import BundleError, PiInspectError
from pi_inspect.edge.events import DefectEvent, ModelInfo
from pi_inspect.edge.view import warn_if_view_differs

log = logging.getLogger(__name__)

ClassifierLoader = Callable[[ModelConfig], Classifier]
AnomalyLoader = Callable[[Config], Classifier]  # loads anomaly.bundle
FAULT = "model"
FAULTS = {CLASSIFIER: FAULT, ANOMALY: "anomaly_model"}  # each part's fault name
_NO = {CLASSIFIER: "no model", ANOMALY: "no anomaly model"}


def default_num_threads() -> int:
    """Interpreter threads when the config says none: all cores but one, which is left to the
    capture thread (decoding and resizing) so the two stages overlap instead of competing."""
    import os

    return max(1, (os.cpu_count() or 1) - 1)


def load_from_config(model: ModelConfig) -> Classifier:
    """The default loader: verify and load the configured bundle (None: the demo bundle)."""
    from pi_inspect.edge.runtime import load_classifier

    threads = model.num_threads if model.num_threads is not None else default_num_threads()
    return load_classifier(model.bundle, backend=model.backend, num_threads=threads)


def load_anomaly_from_config(config: Config) -> Classifier:
    """The default anomaly loader: verify and load ``anomaly.bundle`` with the model's runtime
    settings; a bundle of another task is refused."""
    from pi_inspect.edge.runtime import load_classifier

    model = config.model
    threads = model.num_threads if model.num_threads is not None else default_num_threads()
    clf = load_classifier(config.anomaly.bundle, backend=model.backend, num_threads=threads)
    if clf.task != "anomaly":
        clf.close()
        raise BundleError(
            f"anomaly.bundle {config.anomaly.bundle} is a {clf.task} bundle, not an anomaly bundle"
        )
    return clf


def wanted_parts(config: Config) -> tuple[str, ...]:
    """The parts ``config`` asks for, in run order."""
    return (CLASSIFIER, ANOMALY) if config.anomaly.bundle else (CLASSIFIER,)


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
        anomaly_loader: AnomalyLoader = load_anomaly_from_config,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.RLock()
        self._loader = loader
        self._anomaly_loader = anomaly_loader
        self._faults = faults
        self._clock = clock
        self.classifier: Classifier | None = None
        self.debouncer: Debouncer | None = None
        self.info: ModelInfo | None = None  # with the model's labels
        self.description = ""  # name, version, hash prefix and input size, for logs
        self._next_retry: dict[str, float] = {}  # part -> when to try it again
        self._wanted: tuple[str, ...] = (CLASSIFIER,)  # the parts the config in force asks for

    # -- loading ------------------------------------------------------------------------------
    def _load(self, name: str, config: Config) -> Classifier:
        return self._loader(config.model) if name == CLASSIFIER else self._anomaly_loader(config)

    def _compose(
        self, parts: dict[str, Classifier], config: Config
    ) -> tuple[Classifier, Debouncer]:
        """The model the inspector runs (a pair whenever ``anomaly.bundle`` is set) and its
        debouncer; raises ``PiInspectError`` and closes nothing."""
        clf = ModelPair(parts) if config.anomaly.bundle else parts[CLASSIFIER]
        overrides = config.model.thresholds
        if set(parts) != set(wanted_parts(config)):  # a part is missing: its labels are unknown
            overrides = {k: v for k, v in overrides.items() if k in clf.labels}
        try:
            rules = make_rules(clf.labels, clf.thresholds, clf.alarms, overrides, clf.meanings)
        except ValueError as exc:
            raise PiInspectError(f"model.thresholds: {exc}") from None
        sha = clf.sha256_by_label() if isinstance(clf, ModelPair) else clf.info.sha256
        d = config.decide
        return clf, Debouncer(rules, k=d.k, n=d.n, m=d.m, model_sha256=sha)

    def build(self, config: Config) -> tuple[Classifier, Debouncer]:
        """Load every configured bundle afresh and the debouncer (a reload: all or nothing);
        raises ``PiInspectError``/``OSError``."""
        parts: dict[str, Classifier] = {}
        try:
            for name in wanted_parts(config):
                parts[name] = self._load(name, config)
            built = self._compose(parts, config)
        except BaseException:
            for clf in parts.values():
                clf.close()
            raise
        self._wanted = wanted_parts(config)
        return built

    def retry_due(self) -> bool:
        """A configured part is not loaded, and its retry interval since it failed has passed."""
        now, loaded = self._clock(), parts_of(self.classifier)
        return any(
            name not in loaded and now >= self._next_retry.get(name, 0.0) for name in self._wanted
        )

    def try_load(self, config: Config) -> bool:
        """Load the configured parts that are missing and due; each failure is that part's
        fault, retried later, and the parts already running go on. True when the model changed."""
        self._wanted = wanted_parts(config)
        parts = parts_of(self.classifier)
        now, joined, built = self._clock(), [], None
        for name in self._wanted:
            if name in parts or now < self._next_retry.get(name, 0.0):
                continue
            clf = None
            try:
                clf = self._load(name, config)
                candidate = {n: clf if n == name else parts[n] for n in self._wanted if n in parts or n == name}
                built = self._compose(candidate, config)
            except (PiInspectError, OSError) as exc:
                if clf is not None:
                    clf.close()
                self._faults.set(FAULTS[name], f"{_NO[name]}: {str(exc).splitlines()[0]}")
                self._next_retry[name] = now + config.model.retry_s
                continue
            parts = candidate
            joined.append(name)
        if built is None or not joined:
            return False
        self.swap(*built, keep_open=True)
        for name in joined:
            what = "model" if name == CLASSIFIER else f"{name} model"
            log.info("%s %s loaded", what, describe(parts[name]))
            warn_if_view_differs(parts[name], config.source)
        return True

    def input_size(self) -> tuple[int, int] | None:
        """The loaded model's input (w, h); a camera with a small stream sizes it for this."""
        clf = self.classifier
        return tuple(clf.input_size) if clf is not None else None

    def swap(
        self, clf: Classifier, debouncer: Debouncer, *, keep_open: bool = False
    ) -> list[DefectEvent]:
        """Put a new model in; closes the parts no longer used and returns the defects the old
        one had open (``keep_open``: a part joined the running ones, whose defects go on)."""
        with self.lock:
            ended: list[DefectEvent] = []
            if keep_open and self.debouncer is not None:
                debouncer.adopt(self.debouncer)
            elif self.debouncer is not None:
                ended = self.debouncer.flush()
            old = parts_of(self.classifier)
            self.classifier, self.debouncer = clf, debouncer
            self.info = replace(
                clf.info,
                labels=tuple(clf.labels),
                meanings=tuple((k, m.alarm, m.meaning) for k, m in clf.meanings.items()),
            )
            self.description = describe(clf)
        new = parts_of(clf)
        for name, fault in FAULTS.items():
            if name in new or name not in self._wanted:
                self._faults.clear(fault)
        for part in old.values():
            if all(part is not kept for kept in new.values()):
                part.close()
        return ended

    def warn_views(self, source: object) -> None:
        """Warn for each running bundle trained on other pixels than the station looks at."""
        for part in parts_of(self.classifier).values():
            warn_if_view_differs(part, source)

    def cost(self) -> dict[str, dict[str, float]]:
        """Per part: invoke milliseconds p50/p95 while two bundles run (stats); else empty."""
        with self.lock:
            clf = self.classifier
            return clf.cost() if isinstance(clf, ModelPair) else {}

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

    def top_alarm_label(self, scores: dict[str, float], active: tuple[str, ...]) -> str | None:
        """Whose heat map a requested snapshot or a live viewer shows for a frame with
        ``scores`` and the labels raised (``active``) after it: while a label is raised, the
        raised one furthest past (or nearest to) its threshold, even if another label's score
        is nearer to alarming on this frame; else the label nearest to alarming, in its alarm
        direction. (The highest score would pick ``length`` on every good frame: it alarms
        below its threshold.)"""
        with self.lock:
            rules = dict(self.debouncer.rules) if self.debouncer is not None else {}

        def margin(name: str) -> float:
            rule = rules[name]
            gap = scores[name] - rule.threshold
            return gap if rule.direction == "above" else -gap

        known = [name for name in rules if name in scores]
        raised = [name for name in known if name in active]
        return max(raised or known, key=margin) if known else None

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
