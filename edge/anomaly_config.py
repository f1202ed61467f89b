"""The ``[anomaly]`` config section: an anomaly bundle run beside the classifier on every frame.

An anomaly bundle alone needs no section: point ``model.bundle`` at it. With ``anomaly.bundle``
set the station runs both models on the same model input (they must share its size) and
reports one more label, ``anomaly``, through events, state, LEDs, MQTT and Home Assistant like
any classifier label; ``model.thresholds`` overrides its threshold too (``anomaly = 0.7``).
``model.backend``, ``model.num_threads`` and ``model.retry_s`` apply to both bundles.
"""

from __future__ import annotations

from pi_inspect.edge.config_checks import PathText
from pi_inspect.edge.section import Section


class AnomalyConfig(Section):
    """An anomaly bundle beside the classifier: both run on the same frame."""

    bundle: PathText | None = None  # anomaly bundle run beside model.bundle (unset: none)
