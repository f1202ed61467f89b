"""Two models on one frame: the classifier and an anomaly bundle behind one ``Classifier`` face.

``ModelPair`` presents the labels of its parts in order (the classifier's, then ``anomaly``),
their thresholds, alarms and meanings merged, one scores vector, and each label's heat map from
the part that scores it (Grad-CAM for a classifier label, the anomaly map for ``anomaly``). So
the debouncer, events, state, LEDs, MQTT topics and Home Assistant discovery handle ``anomaly``
as one more label, with no special case anywhere downstream.

Parts are named after the config key of their bundle (``model``, ``anomaly``); the slot builds a pair from whichever parts are
loaded, so one missing bundle leaves the other inspecting. Each part's invoke time is kept in a
window for the stats line (``cost``).
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from pi_inspect.edge.daemon.protocols import Classifier, Prediction
from pi_inspect.edge.data.meanings import LabelMeaning
from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.stats import percentile

# Part names: the config section naming each bundle, in the order the pair runs them.
CLASSIFIER, ANOMALY = "model", "anomaly"
COST_WINDOW = 200  # invokes per part kept for the p50/p95 in stats


@dataclass(frozen=True)
class PairPrediction:
    """Every part's scores in one vector; ``features`` holds each part's own prediction when
    the feature maps were asked for (a snapshot), else None."""

    scores: np.ndarray
    features: tuple[Prediction, ...] | None


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


class ModelPair:
    """The parts (name -> loaded model, in run order) as one model. Not thread-safe, as a
    classifier: the slot's lock guards it."""

    def __init__(
        self, parts: Mapping[str, Classifier], *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not parts:
            raise ValueError("a model pair needs at least one part")
        self.parts = dict(parts)
        self._clock = clock
        models = list(self.parts.values())
        first_name, first = next(iter(self.parts.items()))
        for name, clf in list(self.parts.items())[1:]:
            if tuple(clf.input_size) != tuple(first.input_size):
                raise BundleError(
                    f"{name}.bundle's model input is {_size_text(clf.input_size)}, "
                    f"{first_name}.bundle's is {_size_text(first.input_size)}: both run on the same "
                    f"frame, so they need the same input size"
                )
        self._owner: dict[str, int] = {}
        for i, clf in enumerate(models):
            for label in clf.labels:
                if label in self._owner:
                    names = list(self.parts)
                    raise BundleError(
                        f"label {label!r} is scored by both {names[self._owner[label]]}.bundle and "
                        f"{names[i]}.bundle; labels must be unique"
                    )
                self._owner[label] = i
        self._models = models
        self._cost: dict[str, deque[float]] = {n: deque(maxlen=COST_WINDOW) for n in self.parts}

    # -- what the daemon needs of a classifier ------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for clf in self._models for label in clf.labels)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self._models[0].input_size)

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: v for clf in self._models for k, v in clf.thresholds.items()}

    @property
    def alarms(self) -> dict[str, str]:
        return {k: v for clf in self._models for k, v in clf.alarms.items()}

    @property
    def meanings(self) -> dict[str, LabelMeaning]:
        return {k: v for clf in self._models for k, v in clf.meanings.items()}

    @property
    def info(self) -> ModelInfo:
        """One part: its own. Two: names and versions joined with '+', and a sha256 over both
        parts' hashes, so the state changes when either bundle does."""
        infos = [clf.info for clf in self._models]
        if len(infos) == 1:
            return infos[0]
        digest = hashlib.sha256("".join(i.sha256 for i in infos).encode()).hexdigest()
        return ModelInfo(
            name="+".join(i.name for i in infos),
            version="+".join(i.version for i in infos),
            sha256=digest,
        )

    def sha256_by_label(self) -> dict[str, str]:
        """The sha256 of the model that scores each label: an event names its own model."""
        return {label: self._models[i].info.sha256 for label, i in self._owner.items()}

    @property
    def has_heatmaps(self) -> bool:
        return any(clf.has_heatmaps for clf in self._models)

    def predict(self, rgb: np.ndarray, with_features: bool = True) -> PairPrediction:
        """Every part on the same input, in order; each part's invoke time is recorded."""
        predictions = []
        for name, clf in self.parts.items():
            t0 = self._clock()
            predictions.append(clf.predict(rgb, with_features=with_features))
            self._cost[name].append((self._clock() - t0) * 1000.0)
        scores = np.concatenate([np.asarray(p.scores, np.float32).reshape(-1) for p in predictions])
        return PairPrediction(scores, tuple(predictions) if with_features else None)

    def heatmap(self, prediction: PairPrediction, label: str) -> np.ndarray:
        """``label``'s heat map from the part that scores it."""
        if label not in self._owner:
            raise BundleError(f"no model scores label {label!r}")
        if prediction.features is None:
            raise BundleError("the prediction holds no feature maps")
        i = self._owner[label]
        return self._models[i].heatmap(prediction.features[i], label)

    def cost(self) -> dict[str, dict[str, float]]:
        """Per part: invoke milliseconds p50 and p95 over the recent frames (stats)."""
        out = {}
        for name, window in self._cost.items():
            if window:
                values = sorted(window)
                out[name] = {
                    "p50": round(percentile(values, 50), 2),
                    "p95": round(percentile(values, 95), 2),
                }
        return out

    def close(self) -> None:
        for clf in self._models:
            clf.close()


def parts_of(clf: Classifier | None) -> dict[str, Classifier]:
    """The named parts a loaded model consists of (a lone classifier is the classifier part)."""
    if clf is None:
        return {}
    return dict(clf.parts) if isinstance(clf, ModelPair) else {CLASSIFIER: clf}
