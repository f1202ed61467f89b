"""The anomaly model: the classifier's conv trunk with a map head instead of a class head.

``pixels`` (float32, raw 0..255 RGB) -> the ``cnn`` trunk (``pi_inspect.train.models``: three pools, so a
96 px input keeps a 12x12 map) -> ``map_head`` (3x3 conv, BN, ReLU) -> ``map_logits`` (1x1 conv)
-> ``map_prob`` (sigmoid) -> ``anomaly_map`` (h/8, w/8) and ``anomaly_score`` (its maximum).

The score is the map's peak, so the score and the place the map points at are one number and
one cell: the operator sees where the decision came from. Every op (conv, max pool, logistic,
reshape) has an int8 kernel in LiteRT.
"""

from __future__ import annotations

import keras
from keras import layers

SCORE = "anomaly_score"
MAP = "anomaly_map"
STRIDE = 8  # the trunk pools three times


def map_size(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the anomaly map for an input of ``size`` = (w, h)."""
    return (-(-size[0] // STRIDE), -(-size[1] // STRIDE))


def build_anomaly_model(size: tuple[int, int], head_filters: int = 64) -> keras.Model:
    """Build (not compile) the anomaly model for inputs of ``size`` = (w, h)."""
    from pi_inspect.train.models import ModelSpec, _cnn, _conv_bn_relu

    width, height = size
    mw, mh = map_size(size)
    pixels = keras.Input(shape=(height, width, 3), name="pixels", dtype="float32")
    trunk = _cnn(pixels, ModelSpec("cnn", size, 1))
    x = layers.Activation("linear", name="features")(trunk)
    x = _conv_bn_relu(x, head_filters, "map_head")
    logits = layers.Conv2D(1, 1, name="map_logits")(x)
    prob = layers.Activation("sigmoid", name="map_prob", dtype="float32")(logits)
    amap = layers.Reshape((mh, mw), name=MAP)(prob)
    score = layers.GlobalMaxPooling2D(name=SCORE)(prob)
    return keras.Model(pixels, {SCORE: score, MAP: amap}, name="pi_inspect_anomaly")
