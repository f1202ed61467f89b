"""Did the model learn anything? The validation signal against chance, and the refusal.

A classifier is judged by its balanced accuracy on the validation split (per label for
multilabel, over classes for multiclass: the mean recall, whose chance level is 1/K), so that a
model predicting the majority class everywhere is at chance however unbalanced the data. The
skill is how far above chance it is, as a share of the way to perfect: ``(bacc - chance) /
(1 - chance)``. A model whose mean skill stays under ``MIN_SKILL`` has learned nothing usable:
``train`` writes the run for inspection, says so in one line and exits 3; ``convert`` refuses it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pi_inspect.edge.errors import DidNotLearn

log = logging.getLogger(__name__)

MIN_SKILL = 0.2  # a binary label must reach a balanced accuracy of 0.6 (chance 0.5)
MIN_PER_CLASS = 5  # validation images each side of a label needs before it can be judged


@dataclass(frozen=True)
class Validation:
    balanced_accuracy: float  # mean over the labels that could be judged
    chance: float
    skill: float
    images: int
    per_label: dict[str, float]  # label -> balanced accuracy

    @property
    def learned(self) -> bool | None:
        """None when the validation split is too small to tell (no label judged)."""
        return None if np.isnan(self.skill) else bool(self.skill >= MIN_SKILL)

    def to_dict(self) -> dict[str, Any]:
        """As run.json keeps it (NaN, where nothing could be judged, as null)."""
        d = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(self).items()}
        return {**d, "learned": self.learned}


def _balanced_accuracy(truth: np.ndarray, predicted: np.ndarray, classes: int) -> float | None:
    """Mean recall over the classes with at least ``MIN_PER_CLASS`` images (None: fewer than
    two such classes: too few images to tell chance from skill)."""
    judged = [c for c in range(classes) if (truth == c).sum() >= MIN_PER_CLASS]
    if len(judged) < 2:
        return None
    return float(np.mean([(predicted[truth == c] == c).mean() for c in judged]))


def judge(task: str, labels: tuple[str, ...], y: np.ndarray, scores: np.ndarray) -> Validation:
    """The validation signal of ``scores`` (n, labels) against ``y`` (n, labels)."""
    y, scores = np.asarray(y), np.asarray(scores)
    per_label: dict[str, float] = {}
    if task == "multiclass":
        truth, predicted = y.argmax(axis=1), scores.argmax(axis=1)
        bacc = _balanced_accuracy(truth, predicted, len(labels))
        judged = sum(int((truth == k).sum() >= MIN_PER_CLASS) for k in range(len(labels)))
        chance = 1.0 / max(2, judged)
        for k, label in enumerate(labels):
            if (truth == k).any():
                per_label[label] = float((predicted[truth == k] == k).mean())
    else:
        chance = 0.5
        for k, label in enumerate(labels):
            value = _balanced_accuracy((y[:, k] > 0.5).astype(int), (scores[:, k] > 0.5).astype(int), 2)
            if value is not None:
                per_label[label] = value
        bacc = float(np.mean(list(per_label.values()))) if per_label else None
    if bacc is None:  # too few validation images to tell: not refused on it (learned is None)
        return Validation(float("nan"), chance, float("nan"), len(y), per_label)
    skill = (bacc - chance) / (1.0 - chance) if chance < 1.0 else 0.0
    return Validation(round(bacc, 4), round(chance, 4), round(skill, 4), len(y), per_label)


def refuse_unless_learned(validation: Validation, run_dir: Any) -> None:
    if validation.learned is None:
        log.warning(
            "too few validation images (%d; %d a side per label) to tell whether it learned",
            validation.images, MIN_PER_CLASS,
        )  # fmt: skip
    if validation.learned is False:
        raise DidNotLearn(
            f"did not learn: validation balanced accuracy {validation.balanced_accuracy:.2f} "
            f"(chance {validation.chance:.2f}) on {validation.images} images; the run is in "
            f"{run_dir} for inspection, and convert refuses it. More images per label, labels "
            "checked in the labelling tool, or more epochs are the usual cures"
        )
