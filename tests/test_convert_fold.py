"""pi_inspect.convert.fold: the pool-first BatchNorm folds into its conv without changing the function."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pi_inspect.convert.fold import fold_pooled_batchnorm, pooled_batchnorms
from pi_inspect.train.models import ModelSpec, build_model


def _cnn_with_trained_looking_batchnorms(seed: int = 0) -> keras.Model:
    """A 32 px cnn whose BatchNorms have non-trivial scales, shifts and running statistics."""
    keras.utils.set_random_seed(seed)
    model = build_model(ModelSpec("cnn", (32, 32), 3, dropout=0.0))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.3, 3.0, n),  # gamma > 0
                    rng.normal(0, 0.5, n),  # beta
                    rng.normal(0, 2.0, n),  # moving mean
                    rng.uniform(0.5, 20.0, n),  # moving variance
                ]
            )
    return model


def _pixels(n: int = 8) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3)).astype("float32")


def test_the_cnn_has_three_pooled_batchnorms_to_fold():
    model = build_model(ModelSpec("cnn", (32, 32), 3))
    assert pooled_batchnorms(model) == [(f"block{i}_conv", f"block{i}_bn") for i in range(3)]


def test_folding_keeps_scores_and_feature_maps():
    model = _cnn_with_trained_looking_batchnorms()
    folded = fold_pooled_batchnorm(model)
    assert folded is not model
    assert not any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in folded.layers
        if layer.name.startswith(("block0", "block1", "block2"))
    )
    x = _pixels()
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    before = keras.Model(model.input, model.get_layer("features").output).predict(x, verbose=0)
    after = keras.Model(folded.input, folded.get_layer("features").output).predict(x, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


def test_a_negative_batchnorm_scale_leaves_that_block_unfolded():
    model = _cnn_with_trained_looking_batchnorms()
    bn = model.get_layer("block1_bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[0] = -1.0  # max pooling does not commute with a sign flip
    bn.set_weights([gamma, beta, mean, var])
    folded = fold_pooled_batchnorm(model)
    assert isinstance(folded.get_layer("block1_bn"), keras.layers.BatchNormalization)
    assert not isinstance(folded.get_layer("block0_bn"), keras.layers.BatchNormalization)
    x = _pixels()
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet", "mobilenetv2"])
def test_archs_without_pooled_batchnorms_are_returned_unchanged(arch):
    model = build_model(ModelSpec(arch, (32, 32), 3))
    assert fold_pooled_batchnorm(model) is model


def test_pooled_convs_quantize_only_the_non_negative_range_they_pass_on():
    """The ReLU moves ahead of the pool, so int8 spends no codes on negatives ReLU would drop.

    Left after the pool, the converter calibrated the raw, signed conv output; on the demo
    model that wasted a third of the codes and cut heat-map agreement from 0.98 to 0.90.
    """
    from ai_edge_litert.interpreter import Interpreter

    from pi_inspect.convert.quantize import convert_model

    folded = fold_pooled_batchnorm(_cnn_with_trained_looking_batchnorms())
    assert [folded.get_layer(f"block{i}_conv").activation.__name__ for i in range(3)] == [
        "relu"
    ] * 3
    interp = Interpreter(model_content=convert_model(folded, "int8", _pixels(16)))
    interp.allocate_tensors()
    ops = interp._get_ops_details()
    conv_outputs = {op["outputs"][0] for op in ops if op["op_name"] == "CONV_2D"}
    pooled = [op["inputs"][0] for op in ops if op["op_name"] == "MAX_POOL_2D"]
    assert len(pooled) == 3 and set(pooled) <= conv_outputs
    zero_points = [interp._get_tensor_details(i, 0)["quantization"][1] for i in pooled]
    assert zero_points == [-128, -128, -128]


def _log_range_spread(model, x) -> float:
    """Spread of the live feature channels' maxima, in log units (0: all channels alike)."""
    fmap = keras.Model(model.input, model.get_layer("features").output).predict(x, verbose=0)
    peaks = fmap.max(axis=(0, 1, 2))
    return float(np.ptp(np.log(peaks[peaks > 0])))


@pytest.mark.parametrize("hidden", [(), (16,)])
def test_equalising_activations_keeps_scores_and_grad_cam_maps(hidden):
    from pi_inspect.convert.equalize import equalize_activations, links
    from pi_inspect.train.gradcam import gradcam

    model = _cnn_with_trained_looking_batchnorms()
    if hidden:  # same trunk, a hidden dense layer in the head
        keras.utils.set_random_seed(0)
        other = build_model(ModelSpec("cnn", (32, 32), 3, dropout=0.0, head_hidden=hidden))
        for layer in model.layers:
            if layer.name in [o.name for o in other.layers] and layer.name != "logits":
                other.get_layer(layer.name).set_weights(layer.get_weights())
        model = other
    folded = fold_pooled_batchnorm(model)
    x = _pixels(16)
    scores, maps, spread = (
        folded.predict(x, verbose=0),
        gradcam(folded, x, 1),
        _log_range_spread(folded, x),
    )
    assert len(links(folded)) == 5
    assert equalize_activations(folded, x) == 5
    np.testing.assert_allclose(folded.predict(x, verbose=0), scores, atol=1e-5)
    np.testing.assert_allclose(gradcam(folded, x, 1), maps, atol=1e-4)
    # the feature channels' ranges move closer together (square-root rule: half the log spread)
    assert _log_range_spread(folded, x) == pytest.approx(spread / 2, rel=0.05)


def test_equalising_leaves_mobilenet_relu6_chains_alone():
    from pi_inspect.convert.equalize import links

    assert links(build_model(ModelSpec("mobilenetv2", (32, 32), 3))) == []


def test_equalising_the_residual_net_keeps_its_scores():
    from pi_inspect.convert.equalize import equalize_activations

    keras.utils.set_random_seed(0)
    model = build_model(ModelSpec("resnet", (32, 32), 3))
    x = _pixels(8)
    before = model.predict(x, verbose=0)
    assert equalize_activations(model, x) > 0
    np.testing.assert_allclose(model.predict(x, verbose=0), before, atol=1e-5)
