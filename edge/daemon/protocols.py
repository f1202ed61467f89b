"""The parts the daemon is given, as protocols: what it needs of a classifier and a notifier,
and (from ``pi_inspect.edge.outputs``, where outputs find them without importing the daemon) what it
gives outputs and how commands come back."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pi_inspect.edge.data.meanings import LabelMeaning
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.outputs import Command, CommandSource, Output, Receiver, Reply

__all__ = [
    "Classifier",
    "Command",
    "CommandSource",
    "Notifier",
    "NullNotifier",
    "Output",
    "Prediction",
    "Receiver",
    "Reply",
]


class Prediction(Protocol):
    scores: np.ndarray  # one score per label, in ``labels`` order
    # What the model's ``heatmap`` needs, when asked for: a feature map, an anomaly map, or
    # (two models on one frame) each part's own prediction.
    features: object | None


class Classifier(Protocol):
    """A loaded model (``pi_inspect.edge.runtime.Classifier`` on the Pi). Not thread-safe."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def input_size(self) -> tuple[int, int]: ...  # (w, h)

    @property
    def thresholds(self) -> dict[str, float]: ...

    @property
    def alarms(self) -> dict[str, str]: ...

    @property
    def meanings(self) -> dict[str, LabelMeaning]:
        """Per label: when it alarms and what it means (the bundle's declaration)."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def has_heatmaps(self) -> bool: ...

    def predict(self, rgb: np.ndarray, with_features: bool = True) -> Prediction: ...

    def heatmap(self, prediction: Prediction, label: str) -> np.ndarray: ...

    def close(self) -> None: ...


class Notifier(Protocol):
    """The service manager (systemd's sd_notify in production)."""

    def ready(self, status: str | None = None) -> None: ...

    def watchdog(self) -> None: ...

    def reloading(self, status: str | None = None) -> None: ...

    def stopping(self, status: str | None = None) -> None: ...

    def status(self, text: str) -> None: ...


class NullNotifier:
    """No service manager (tests, the demo, a shell)."""

    def ready(self, status: str | None = None) -> None: ...

    def watchdog(self) -> None: ...

    def reloading(self, status: str | None = None) -> None: ...

    def stopping(self, status: str | None = None) -> None: ...

    def status(self, text: str) -> None: ...
