"""Fold the BatchNorm that follows a max pool back into the conv before it, for conversion.

The ``cnn`` trains its pooled blocks as conv -> max pool -> BatchNorm -> ReLU (fast on a CPU,
see ``pi_inspect.train.models._cnn``). Converted as is, int8 quantizes the raw conv output, whose channels
span scales 4-6x apart, then adds a MUL and an ADD per block. For a channel whose BatchNorm
scale ``a`` is positive, ``a * max(z) + c == max(a * z + c)``, so the BatchNorm folds exactly
into the conv's weights and bias.

The ReLU after that BatchNorm moves into the conv as its activation (ReLU is monotonic, so it
commutes with max pooling too), and the block converts as the classic conv+bias+ReLU -> pool:
one quantization point per block, calibrated on the non-negative values it passes on. Left
after the pool, the ReLU was fused into the conv by the converter, but with the range it had
calibrated on the raw, signed conv output: on the demo model a third of the int8 codes went to
negatives nobody reads, and on-device heat maps fell from 0.98 to 0.90 Pearson against Keras
(docs/results.md).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def pooled_batchnorms(model) -> list[tuple[str, str]]:
    """(conv, batchnorm) layer name pairs laid out conv -> MaxPooling2D -> BatchNormalization."""
    from keras import layers

    pairs = []
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization):
            continue
        pool = only_parent(layer)
        if not isinstance(pool, layers.MaxPooling2D):
            continue
        conv = only_parent(pool)
        if isinstance(conv, layers.Conv2D) and conv.activation.__name__ == "linear":
            pairs.append((conv.name, layer.name))
    return pairs


def _plain_relu(layer) -> bool:
    """A max(x, 0) layer: ``ReLU()`` with default arguments or ``Activation("relu")``."""
    from keras import layers

    if isinstance(layer, layers.ReLU):
        config = layer.get_config()
        return (
            config.get("max_value") is None
            and not config.get("negative_slope")
            and not config.get("threshold")
        )
    return isinstance(layer, layers.Activation) and layer.get_config()["activation"] == "relu"


def only_parent(layer):
    """The single layer feeding ``layer`` (None for zero or several inputs)."""
    nodes = layer._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].parent_nodes) != 1:
        return None
    return nodes[0].parent_nodes[0].operation


def only_child(layer):
    """The single layer ``layer`` feeds (None for zero or several consumers)."""
    nodes = layer._outbound_nodes
    return nodes[0].operation if len(nodes) == 1 else None


def _affine(bn) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in inference mode as ``a * x + c`` per channel (no gamma/beta: 1 and 0)."""

    def values(variable, default: float) -> np.ndarray | float:
        return default if variable is None else np.asarray(variable.numpy(), np.float64)

    mean = values(bn.moving_mean, 0.0)
    a = values(bn.gamma, 1.0) / np.sqrt(values(bn.moving_variance, 1.0) + bn.epsilon)
    return a, values(bn.beta, 0.0) - a * mean


def _pass_through(name: str):
    """A layer standing where a folded BatchNorm was: takes its call arguments, returns input."""
    from keras import layers

    class PassThrough(layers.Layer):
        def call(self, inputs, training=None, mask=None):
            return inputs

    return PassThrough(name=name)


def fold_pooled_batchnorm(model):
    """An equivalent model with every foldable pooled BatchNorm folded into its conv.

    Returns ``model`` itself when there is nothing to fold, or when a BatchNorm has a scale
    <= 0 (max pooling does not commute with a flip; that block then converts unfolded).
    """
    import keras

    foldable = {}
    for conv_name, bn_name in pooled_batchnorms(model):
        a, c = _affine(model.get_layer(bn_name))
        if np.any(a <= 0):
            log.warning("%s has a BatchNorm scale <= 0; converting it unfolded", bn_name)
            continue
        foldable[conv_name] = (bn_name, a, c)
    if not foldable:
        return model
    folded_bns = {bn for bn, _, _ in foldable.values()}
    relus = {
        conv: child.name
        for conv, (bn, _, _) in foldable.items()
        if (child := only_child(model.get_layer(bn))) is not None and _plain_relu(child)
    }
    gone = folded_bns | set(relus.values())

    def clone(layer):
        config = layer.get_config()
        if layer.name in foldable:
            config["use_bias"] = True
            if layer.name in relus:
                config["activation"] = "relu"
            return layer.__class__.from_config(config)
        if layer.name in gone:
            return _pass_through(layer.name)
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        target = folded.get_layer(layer.name)
        if layer.name in foldable:
            _, a, c = foldable[layer.name]
            kernel = np.asarray(layer.get_weights()[0], np.float64)
            bias = np.asarray(layer.get_weights()[1], np.float64) if layer.use_bias else 0.0
            target.set_weights([(kernel * a).astype(np.float32), (a * bias + c).astype(np.float32)])
        elif layer.name not in gone and layer.weights:
            target.set_weights(layer.get_weights())
    log.info(
        "folded %d pooled BatchNorm layer(s) into their convs, %d ReLU(s) ahead of the pool",
        len(foldable),
        len(relus),
    )
    return folded
