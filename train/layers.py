"""Custom Keras layers the saved models use (imported before a model is loaded, to register them)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pi_inspect")
class TopMean(keras.layers.Layer):
    """The mean of the ``k`` highest cells of each map: (batch, h, w, 1) -> (batch, 1).

    An anomaly score that one cell cannot make alone: a flaw covers a few cells of the map,
    a speck or a noisy cell covers one. Int8 in LiteRT as TOPK_V2 and MEAN.
    """

    def __init__(self, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.k = int(k)

    def call(self, x):
        cells = 1
        for dim in x.shape[1:]:
            cells *= int(dim)
        top, _ = ops.top_k(ops.reshape(x, (-1, cells)), self.k, sorted=False)
        return ops.mean(top, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}
