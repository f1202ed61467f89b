"""Losses and imbalance weights (class weights for softmax, positive-label weights for sigmoid)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

WEIGHT_CLIP = (0.1, 10.0)


@keras.saving.register_keras_serializable(package="pi_inspect")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on sigmoid scores with a weight on each label's positive term.

    ``pos_weight[j] = n_negative / n_positive`` balances a rare defect label against its
    negatives (seed 001 balanced its data by hand instead).
    """

    def __init__(self, pos_weight: Sequence[float], name: str = "weighted_bce", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in pos_weight]

    def call(self, y_true, y_pred):
        eps = keras.config.epsilon()
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, eps, 1.0 - eps)
        w = ops.convert_to_tensor(self.pos_weight, dtype=y_pred.dtype)
        loss = -(w * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(loss, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weight": self.pos_weight}


def positive_weights(y: np.ndarray) -> np.ndarray:
    """Per label n_negative / n_positive, clipped to WEIGHT_CLIP (1 where a label never occurs)."""
    y = np.asarray(y, dtype=bool)
    pos = y.sum(axis=0).astype(float)
    neg = len(y) - pos
    w = np.divide(neg, pos, out=np.ones_like(pos), where=pos > 0)
    return np.clip(w, *WEIGHT_CLIP)


def class_weights(y_onehot: np.ndarray) -> np.ndarray:
    """Per class n / (k * n_class) (sklearn's 'balanced'), clipped; 1 for absent classes."""
    counts = np.asarray(y_onehot, dtype=bool).sum(axis=0).astype(float)
    k = len(counts)
    w = np.divide(counts.sum(), k * counts, out=np.ones_like(counts), where=counts > 0)
    return np.clip(w, *WEIGHT_CLIP)
