"""Every --arch builds to the converter contract; preprocessing layers do what they claim."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pi_inspect.edge.errors import ConfigError
from pi_inspect.train.models import ARCHS, MIN_SIZE, ModelSpec, build_model, caffe_preprocess_layer

HEAD = ["features", "gap", "head_dropout", "head_hidden_0", "logits", "scores"]
SLOW = {"efficientnetb0", "resnet50", "resnet"}


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW else a for a in ARCHS]
)
def test_every_arch_builds_to_the_contract_at_its_smallest_size(arch):
    size = max(32, MIN_SIZE[arch])
    model = build_model(ModelSpec(arch, (size, size), 3, head_hidden=(8,)))
    names = [layer.name for layer in model.layers]
    assert names[names.index("features") :] == HEAD
    assert model.inputs[0].shape[1:] == (size, size, 3)
    assert model.get_layer("pixels") is not None
    assert len(model.get_layer("features").output.shape) == 4  # a conv feature map
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    scores = np.asarray(model(np.full((2, size, size, 3), 128.0, np.float32)))
    assert scores.shape == (2, 3) and np.all((scores >= 0) & (scores <= 1))


def test_multiclass_head_is_softmax_and_sums_to_one():
    model = build_model(ModelSpec("cnn", (32, 32), 4, task="multiclass"))
    scores = np.asarray(
        model(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"))
    )
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert model.get_layer("scores").get_config()["activation"] == "softmax"


def test_caffe_layer_equals_keras_resnet50_preprocess_input():
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    layer = caffe_preprocess_layer()
    ours = np.asarray(layer(pixels))
    reference = keras.applications.resnet50.preprocess_input(pixels.copy())
    assert np.allclose(ours, np.asarray(reference), atol=1e-3)
    assert not layer.trainable


def test_mobilenet_rescaling_maps_pixels_to_minus_one_one():
    model = build_model(ModelSpec("mobilenetv2", (32, 32), 2))
    rescale = model.get_layer("rescale")
    out = np.asarray(rescale(np.array([[[[0.0, 127.5, 255.0]]]], np.float32)))
    assert np.allclose(out, [-1.0, 0.0, 1.0])


def test_too_small_input_is_a_config_error_naming_the_minimum():
    with pytest.raises(ConfigError, match="minimum 32"):
        build_model(ModelSpec("mobilenetv2", (24, 24), 2))


def test_missing_weights_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        build_model(ModelSpec("cnn", (32, 32), 2, weights=str(tmp_path / "nope.weights.h5")))


def test_weights_file_loads_into_a_from_scratch_arch(tmp_path):
    spec = ModelSpec("cnn", (32, 32), 2)
    source = build_model(spec)
    path = tmp_path / "w.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(123)
    loaded = build_model(ModelSpec("cnn", (32, 32), 2, weights=str(path)))
    x = np.full((1, 32, 32, 3), 50.0, np.float32)
    assert np.allclose(np.asarray(source(x)), np.asarray(loaded(x)))


def test_unreachable_imagenet_weights_become_one_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty cache: keras must try to download

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", offline)
    with pytest.raises(ConfigError, match="~/.keras/models"):
        build_model(ModelSpec("mobilenetv2", (96, 96), 2, weights="imagenet"))
