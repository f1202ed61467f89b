"""``pi-inspect promote``: make the shadow candidate the model in service, if it earned it.

The gate, in order (``--force`` skips the first two, never the third):

1. the shadow record (``<state_dir>/shadow.json``) is this candidate's, with at least
   ``shadow.min_frames`` frames scored and ``shadow.min_agreement`` of them judged alike;
2. no missed defect among the labelled samples: on every kept frame whose right labels an
   operator gave, each right label that alarms must alarm for the candidate too;
3. the candidate verifies and its golden set passes on this device (``deploy`` checks it in a
   child process before ``current`` moves).

Then ``current`` points at the candidate and ``previous`` at the model it replaced, the service
reloads, and ``<state_dir>/promotion.json`` records the alarm rate to expect: the candidate's
from the shadow period, or, for a promotion forced past the gate, the rate the line showed
under the model it replaced. The daemon watches the next ``shadow.watch_frames`` frames and
rolls back by itself when their alarm rate leaves that band (``pi_inspect.edge.daemon.watch``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_inspect.edge.bundle import identity
from pi_inspect.edge.decide import make_rules
from pi_inspect.edge.deploy import CURRENT, DeployError, Reloader, check_in_child, deploy_local
from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.files import write_json

log = logging.getLogger(__name__)

SHADOW_RECORD = "shadow.json"
PROMOTION_RECORD = "promotion.json"


class PromotionRefused(PiInspectError, RuntimeError):
    """The candidate did not pass the gate; nothing was switched."""

    exit_code = 3


@dataclass
class Promotion:
    current: str
    previous: str | None
    expected_alarm_rate: float | None
    notes: list[str] = field(default_factory=list)


def models_dir(config: Any) -> Path:
    """The models directory ``deploy`` manages: ``model.bundle`` must be its ``current``."""
    bundle = config.model.bundle
    if bundle is None or Path(bundle).name != CURRENT:
        raise DeployError(
            f"model.bundle is {bundle}; promote needs it to be <models>/{CURRENT}, as deploy installs"
        )
    return Path(bundle).parent


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def missed_defects(candidate: Any, samples: Path) -> list[str]:
    """Kept frames an operator labelled, on which the candidate misses a right label that alarms."""
    from pi_inspect.edge.preprocess import load_image

    rules = make_rules(candidate.labels, candidate.thresholds, candidate.alarms)
    missed = []
    for sidecar in sorted(samples.glob("*.json")) if samples.is_dir() else []:
        meta = read_record(sidecar) or {}
        right = meta.get("right_labels")
        if not isinstance(right, list) or not any(label in rules for label in right):
            continue
        try:
            rgb = load_image(str(sidecar.with_suffix(".jpg")), tuple(candidate.input_size))
        except ValueError:
            continue
        scores = dict(zip(candidate.labels, candidate.predict(rgb, with_features=False).scores, strict=True))
        missing = [label for label in right if label in rules and not rules[label].alarms(float(scores[label]))]
        if missing:
            missed.append(f"{sidecar.with_suffix('.jpg').name} ({', '.join(missing)})")
    return missed


def check_gate(config: Any, candidate: Any, record: dict[str, Any] | None) -> list[str]:
    """Why the candidate may not be promoted; empty when it passes the shadow gate."""
    shadow = config.shadow
    problems = []
    if record is None or record.get("candidate", {}).get("identity") != identity(candidate):
        problems.append("no shadow record of this candidate (run it as [shadow] bundle first)")
    else:
        if record.get("frames", 0) < shadow.min_frames:
            problems.append(f"{record.get('frames', 0)} frames in shadow, shadow.min_frames is {shadow.min_frames}")
        agreement = record.get("agreement")
        if agreement is None or agreement < shadow.min_agreement:
            problems.append(f"agreement {agreement} < shadow.min_agreement {shadow.min_agreement}")
    snapshots = config.resolved_state_dir() / config.snapshots.dir
    missed = missed_defects(candidate, snapshots)
    if missed:
        problems.append(f"misses labelled defects on {len(missed)} kept frame(s): {'; '.join(missed[:5])}")
    return problems


def promote(
    config: Any,
    *,
    force: bool = False,
    reload: Reloader | None = None,
    check=check_in_child,
    load=None,
) -> Promotion:
    """Promote ``config.shadow.bundle`` past the gate (``PromotionRefused`` names every reason)."""
    from pi_inspect.edge.runtime import load_classifier

    if config.shadow.bundle is None:
        raise PromotionRefused("no candidate: set [shadow] bundle and let it run beside the model")
    models = models_dir(config)
    state = config.resolved_state_dir()
    record = read_record(state / SHADOW_RECORD)
    load = load or (lambda path: load_classifier(path, num_threads=1))
    with load(config.shadow.bundle) as candidate:
        problems = check_gate(config, candidate, record)
        sha = identity(candidate)
    if problems and not force:
        raise PromotionRefused("promotion refused, nothing switched: " + "; ".join(problems))
    notes = [f"forced past: {p}" for p in problems] if problems else []
    switch = deploy_local(Path(config.shadow.bundle), models, reload=reload, check=check)
    ours = record is not None and record.get("candidate", {}).get("identity") == sha
    key = "candidate_alarm_rate" if ours and not problems else "service_alarm_rate"
    rate = record.get(key) if record is not None else None
    entry = {
        "identity": sha, "current": switch.current, "previous": switch.previous, "at": time.time(),
        "expected_alarm_rate": rate, "from": key if rate is not None else None, "forced": bool(problems),
    }  # fmt: skip
    write_json(state / PROMOTION_RECORD, entry)  # atomic: the daemon may read it at any time
    if rate is None:
        notes.append("no alarm rate to watch: the daemon will not roll back by itself")
    return Promotion(switch.current, switch.previous, rate, notes)
