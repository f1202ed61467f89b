"""The anomaly model: the classifier's conv trunk with a map head instead of a class head.

``pixels`` (float32, raw 0..255 RGB) -> the ``cnn`` trunk (``pi_inspect.train.models``: three pools, so a
96 px input keeps a 12x12 map) -> ``map_head`` (3x3 conv, BN, ReLU) -> ``map_logits`` (1x1 conv)
-> ``map_prob`` (sigmoid) -> ``anomaly_map`` (h/8, w/8) and ``anomaly_score``: the mean of the
map's ``score_cells`` highest cells (one cell, its peak, on a map of up to 53 cells).

The score is read off the map, so the operator sees the cells the decision came from. It is the
mean of a few cells rather than the single peak because a flaw a line cares about covers more
than one cell of the map, while a speck of lint or one noisy cell covers one: the peak of 144
cells is an extreme value whose tail on good images is far heavier than the held-out images
show, so its threshold let several times the false-alarm target through on unseen images of the
same line. Training still puts its score loss on the peak (a twin model, ``peak=True``), so a
one-cell pseudo-defect still teaches. Every op (conv, max pool, logistic, reshape, top-k, mean)
has an int8 kernel in LiteRT.
"""

from __future__ import annotations

import keras
from keras import layers

SCORE = "anomaly_score"
MAP = "anomaly_map"
STRIDE = 8  # the trunk pools three times
CELLS_PER_FLAW = 36  # the score averages 1/36 of the map's cells: 4 of a 96 px input's 12x12


def map_size(size: tuple[int, int]) -> tuple[int, int]:
    """(w, h) of the anomaly map for an input of ``size`` = (w, h)."""
    return (-(-size[0] // STRIDE), -(-size[1] // STRIDE))


def score_cells(grid: tuple[int, int]) -> int:
    """How many of the highest cells of a map of ``grid`` = (w, h) the score averages."""
    return max(1, round(grid[0] * grid[1] / CELLS_PER_FLAW))


def build_anomaly_model(
    size: tuple[int, int], head_filters: int = 64, peak: bool = False
) -> keras.Model:
    """Build (not compile) the anomaly model for inputs of ``size`` = (w, h); ``peak``: the
    score is the map's single highest cell (what training puts its score loss on)."""
    from pi_inspect.train.layers import TopMean
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
    k = 1 if peak else score_cells((mw, mh))
    score = layers.GlobalMaxPooling2D(name=SCORE)(prob) if k == 1 else TopMean(k, name=SCORE)(prob)
    return keras.Model(pixels, {SCORE: score, MAP: amap}, name="pi_inspect_anomaly")
