"""After a promotion: roll back by itself when the new model's alarm rate is not what the shadow
period measured.

``pi-inspect promote`` leaves ``<state_dir>/promotion.json`` (the promoted bundle's identity and the
alarm rate to expect). While that model is in service and the record is open, the watch counts
the next ``shadow.watch_frames`` inspected frames that alarm (per frame, undebounced). Their
rate must fall inside the band a binomial sample of that size allows around the expected rate
(three standard deviations, and at least 2 points either way); outside it, the watch decides a
rollback and says why. Inside it, the promotion is confirmed and the watch ends. Either way
the record is closed, so a restart does not watch again.

The watch only decides; the dispatcher hands the decision to the station, which switches
``current`` back (as ``deploy --rollback``) and reloads.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from pi_inspect.edge.files import write_json

log = logging.getLogger(__name__)

RECORD = "promotion.json"
MIN_MARGIN = 0.02


def band(rate: float, frames: int) -> tuple[float, float]:
    margin = max(3.0 * math.sqrt(max(rate * (1.0 - rate), 0.0) / frames), MIN_MARGIN)
    return max(0.0, rate - margin), min(1.0, rate + margin)


class PromotionWatch:
    """Reads the promotion record at start and reload; ``observe`` each inspected frame."""

    def __init__(self, state_dir: Path | None, frames: int) -> None:
        self._path = state_dir / RECORD if state_dir is not None else None
        self._frames = frames
        self._record: dict[str, Any] | None = None
        self._seen = self._alarmed = 0
        self.reload()

    def reload(self, frames: int | None = None) -> None:
        """Read the record again (after a reload, a promotion may have switched the model)."""
        self._frames = frames or self._frames
        self._record, self._seen, self._alarmed = None, 0, 0
        if self._path is None:
            return
        try:
            record = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return
        if isinstance(record, dict) and record.get("outcome") is None and record.get("expected_alarm_rate") is not None:
            self._record = record

    @property
    def watching(self) -> bool:
        return self._record is not None

    def observe(self, model: str, alarmed: bool) -> str | None:
        """A rollback's reason once the window shows it, else None. ``model``: the identity
        of the bundle in service (``pi_inspect.edge.daemon.shadow.identity``)."""
        record = self._record
        if record is None or model != record.get("identity"):
            return None
        self._seen += 1
        self._alarmed += bool(alarmed)
        if self._seen < self._frames:
            return None
        rate, expected = self._alarmed / self._seen, float(record["expected_alarm_rate"])
        low, high = band(expected, self._seen)
        self._record = None
        if low <= rate <= high:
            log.info("promotion confirmed: alarm rate %.3f over %d frames, within %.3f-%.3f",
                     rate, self._seen, low, high)  # fmt: skip
            self._close(record, "confirmed", rate)
            return None
        reason = (
            f"alarm rate {rate:.3f} over {self._seen} frames is outside {low:.3f}-{high:.3f}, "
            f"the band the shadow period measured ({expected:.3f})"
        )
        self._close(record, "rolled back", rate, reason)
        return reason

    def _close(self, record: dict[str, Any], outcome: str, rate: float, reason: str | None = None) -> None:
        if self._path is None:
            return
        closed = {**record, "outcome": outcome, "alarm_rate": round(rate, 4), "reason": reason}
        try:
            write_json(self._path, closed)
        except OSError as exc:
            log.warning("promotion record not closed: %s", exc)
