"""Suggested labels for pulled samples, and the order that shows the most uncertain first.

``pi-inspect pull`` writes ``DEST/images/<stem>.jpg`` and ``DEST/samples.csv`` (one row per
sample: the model's ``scores`` and ``thresholds`` as JSON objects, the operator's
``right_labels`` joined by ``;`` and ``said`` = 1 where the operator gave them). For each frame
whose stem has a row:

- said by the operator: a label is True when it is among the right labels; an empty list means
  good, so a label named ``good`` is True then;
- else from the model: a label is True when its score is above its threshold (False when the
  model did not score it); a ``good`` label the model did not score is True when no other label
  is.

Frames are shown by uncertainty: the smallest margin (min over the labels the model scored of
``|score - threshold|``) first, then frames without a usable row in name order, and the frames
an operator labelled last. Pure functions; the only I/O is reading the CSV.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pi_inspect.edge.errors import DataError

SAMPLES_CSV = "samples.csv"
GOOD = "good"


@dataclass(frozen=True)
class Suggestion:
    """Values in the tool's label order, who gave them, and the model's margin (or None)."""

    values: tuple[bool, ...]
    by: Literal["model", "operator"]
    margin: float | None


def find_samples(folder: str | Path) -> Path | None:
    """``samples.csv`` in ``folder`` or its parent (``DEST/images`` -> ``DEST``), else None."""
    folder = Path(folder)
    for candidate in (folder / SAMPLES_CSV, folder.parent / SAMPLES_CSV):
        if candidate.is_file():
            return candidate
    return None


def read_samples(path: str | Path) -> dict[str, dict[str, str]]:
    """The rows of a ``samples.csv`` by the stem of their ``name`` (``images/<stem>.jpg``)."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    return {Path(row["name"]).stem: row for row in rows if (row.get("name") or "").strip()}


def _numbers(text: str | None) -> dict[str, float]:
    """A JSON object of finite numbers; anything else (or any odd entry) reads as empty."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def margin(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> float | None:
    """min over the labels with both a score and a threshold of ``|score - threshold|``."""
    gaps = [abs(scores[label] - thresholds[label]) for label in scores if label in thresholds]
    return min(gaps) if gaps else None


def suggest(row: Mapping[str, str] | None, labels: Sequence[str]) -> Suggestion | None:
    """The suggestion one ``samples.csv`` row gives for ``labels``; None without a usable row
    (no operator answer and no label both scored and given a threshold)."""
    if row is None:
        return None
    scores, thresholds = _numbers(row.get("scores")), _numbers(row.get("thresholds"))
    gap = margin(scores, thresholds)
    if (row.get("said") or "").strip() == "1":
        right = {r.strip() for r in (row.get("right_labels") or "").split(";") if r.strip()}
        values = [label in right or (label == GOOD and not right) for label in labels]
        return Suggestion(tuple(values), "operator", gap)
    if gap is None:
        return None
    values = [
        label in scores and label in thresholds and scores[label] > thresholds[label]
        for label in labels
    ]
    if GOOD in labels and GOOD not in scores:
        good = list(labels).index(GOOD)
        values[good] = not any(v for i, v in enumerate(values) if i != good)
    return Suggestion(tuple(values), "model", gap)


def suggestions(
    names: Sequence[str], rows: Mapping[str, Mapping[str, str]], labels: Sequence[str]
) -> dict[str, Suggestion]:
    """Frame file name -> suggestion, for the frames whose stem has a usable row."""
    found = {}
    for name in names:
        suggestion = suggest(rows.get(Path(name).stem), labels)
        if suggestion is not None:
            found[name] = suggestion
    return found


def uncertainty_order(names: Sequence[str], found: Mapping[str, Suggestion]) -> list[int]:
    """Indices of ``names``: the model's suggestions by margin (smallest first, ties by name),
    then frames without one by name, then the operator's answers by name."""

    def key(i: int) -> tuple[int, float, str]:
        suggestion = found.get(names[i])
        if suggestion is None:
            return (1, 0.0, names[i])
        if suggestion.by == "operator":
            return (2, 0.0, names[i])
        return (0, suggestion.margin if suggestion.margin is not None else 0.0, names[i])

    return sorted(range(len(names)), key=key)
