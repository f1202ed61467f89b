"""The ``anomaly`` rules of a bundle manifest: what task ``anomaly`` demands, and its
optional calibration table (false-alarm target, map size, the global score)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest_head import _is_int, _show

ANOMALY_LABEL = "anomaly"  # the one label of an anomaly bundle
LINEAR = "linear"  # global-score mapping of bundles made before: offset + scale * d, clipped to [0, 1]
LOGIT = "logit"  # the one convert writes: sigmoid(offset + scale * d)
MAX_INPUT_SIDE = 4096


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class GlobalSpec:
    """The manifest's ``anomaly.global`` table (see ``pi_inspect.edge.global_score``)."""

    memory: str  # file name in the bundle: float16 (n, side * side * 3) descriptors
    side: int
    k: int
    scale: float  # mapped = offset + scale * distance, then the mapping
    offset: float
    mapping: str = LINEAR  # LOGIT or LINEAR (no "mapping" key: a bundle made before)

    def to_dict(self) -> dict[str, object]:
        return {"memory": self.memory, "side": self.side, "k": self.k,
                "scale": self.scale, "offset": self.offset, "mapping": self.mapping}


@dataclass(frozen=True)
class AnomalySpec:
    """An anomaly bundle's calibration, as ``convert`` recorded it (all optional): the share of
    good frames its threshold lets alarm, how many held-out good images set it, and the
    anomaly map's size (w, h); and the global score's memory and mapping."""

    false_alarm_target: float | None = None
    calibrated_on: int | None = None
    map_size: tuple[int, int] | None = None
    global_: GlobalSpec | None = None  # the global score, where the bundle carries one


_ANOMALY_KEYS = ("false_alarm_target", "calibrated_on", "map_size", "global")
_GLOBAL_KEYS = ("memory", "side", "k", "scale", "offset")
_GLOBAL_MAPPINGS = (LINEAR, LOGIT)


def anomaly_rules(
    d: dict[str, Any],
    task: str,
    labels: tuple[str, ...],
    thresholds: dict[str, Any],
    alarms: dict[str, str],
    outputs: dict[str, str],
    files: dict[str, str],
    where: str,
) -> AnomalySpec | None:
    """What task ``anomaly`` demands: the one label ``anomaly`` alarming above a calibrated
    threshold strictly inside (0, 1), a ``scores`` and a ``map`` output, no Grad-CAM head;
    the optional ``anomaly`` table checked. Other tasks may use neither ``map`` nor the table."""
    if task != "anomaly":
        if "map" in outputs or d.get("anomaly") is not None:
            raise BundleError(f"{where}: an anomaly map and the 'anomaly' table need task 'anomaly'")
        return None
    if labels != (ANOMALY_LABEL,):
        raise BundleError(f"{where}: task 'anomaly' has exactly one label, 'anomaly' (not {_show(list(labels))})")
    threshold = thresholds.get(ANOMALY_LABEL)
    if threshold is None or not 0.0 < threshold < 1.0:
        raise BundleError(f"{where}: task 'anomaly' needs a calibrated threshold in (0, 1) for 'anomaly'")
    if alarms.get(ANOMALY_LABEL) != "above":
        raise BundleError(f"{where}: label 'anomaly' must alarm when present (a score above its threshold)")
    if "map" not in outputs:
        raise BundleError(f"{where}: task 'anomaly' needs outputs 'scores' and 'map'")
    if d.get("heatmap") is not None:
        raise BundleError(f"{where}: task 'anomaly' has its own map; a Grad-CAM 'heatmap' head does not apply")
    table = d.get("anomaly")
    if table is None:
        return AnomalySpec()
    if not isinstance(table, dict):
        raise BundleError(f"{where}: 'anomaly' must be an object ({', '.join(_ANOMALY_KEYS)})")
    unknown = sorted(str(k) for k in table if k not in _ANOMALY_KEYS)
    if unknown:
        raise BundleError(f"{where}: 'anomaly' has unknown key(s) {_show(unknown)} (known: {', '.join(_ANOMALY_KEYS)})")
    target = table.get("false_alarm_target")
    if target is not None and not (_is_number(target) and 0.0 < target < 1.0):
        raise BundleError(f"{where}: anomaly.false_alarm_target must be a number in (0, 1), not {_show(target)}")
    count = table.get("calibrated_on")
    if count is not None and not (_is_int(count) and count >= 1):
        raise BundleError(f"{where}: anomaly.calibrated_on must be a whole number of images >= 1, not {_show(count)}")
    size = table.get("map_size")
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(_is_int(s) and 1 <= s <= MAX_INPUT_SIDE for s in size)
    ):
        raise BundleError(f"{where}: anomaly.map_size must be [width, height] in 1..{MAX_INPUT_SIDE}, not {_show(size)}")
    return AnomalySpec(
        false_alarm_target=float(target) if target is not None else None,
        calibrated_on=count,
        map_size=(size[0], size[1]) if size is not None else None,
        global_=_global(table.get("global"), files, where),
    )


def _global(table: Any, files: dict[str, str], where: str) -> GlobalSpec | None:
    """The ``anomaly.global`` table: a memory file listed in ``files`` and a finite mapping."""
    if table is None:
        return None
    if not isinstance(table, dict) or sorted(set(table) - {"mapping"}) != sorted(_GLOBAL_KEYS):
        raise BundleError(
            f"{where}: anomaly.global must be an object with exactly {', '.join(_GLOBAL_KEYS)} "
            "(and optionally mapping)"
        )
    memory = table["memory"]
    if not isinstance(memory, str) or memory not in files:
        raise BundleError(f"{where}: anomaly.global.memory {_show(memory)} has no sha256 in 'files'")
    side, k = table["side"], table["k"]
    if not (_is_int(side) and 1 <= side <= 64) or not (_is_int(k) and 1 <= k <= 64):
        raise BundleError(f"{where}: anomaly.global side and k must be whole numbers in 1..64")
    scale, offset = table["scale"], table["offset"]
    if not (_is_number(scale) and scale > 0) or not _is_number(offset):
        raise BundleError(f"{where}: anomaly.global scale must be a number > 0 and offset a number")
    mapping = table.get("mapping", LINEAR)
    if mapping not in _GLOBAL_MAPPINGS:
        raise BundleError(f"{where}: anomaly.global.mapping must be one of {', '.join(_GLOBAL_MAPPINGS)}")
    return GlobalSpec(memory, int(side), int(k), float(scale), float(offset), str(mapping))
