"""Grad-CAM on a hand-built model whose answer is known: it must point at the evidence."""

from __future__ import annotations

import keras
import numpy as np

from pi_inspect.train.gradcam import colour_for, colour_heat, gradcam
from pi_inspect.train.metrics import peak_in_box


def _red_detector(size: int = 32) -> keras.Model:
    """Contract-shaped model: feature map = the red channel at 1/4 resolution; logit 0 = its mean.

    So label 0 ("red") depends only on red pixels and label 1 on the negated red channel.
    """
    pixels = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.AveragePooling2D(4, name="pool")(pixels)
    red = keras.layers.Conv2D(
        1,
        1,
        use_bias=False,
        name="red",
        kernel_initializer=keras.initializers.Constant([[[[1 / 255], [0], [0]]]]),
    )(x)
    features = keras.layers.Activation("linear", name="features")(red)
    gap = keras.layers.GlobalAveragePooling2D(name="gap")(features)
    logits = keras.layers.Dense(
        2,
        name="logits",
        kernel_initializer=keras.initializers.Constant([[4.0, -4.0]]),
        bias_initializer="zeros",
    )(gap)
    scores = keras.layers.Activation("sigmoid", name="scores")(logits)
    return keras.Model(pixels, scores)


def test_gradcam_peak_lies_on_the_only_evidence():
    model = _red_detector()
    images = np.zeros((3, 32, 32, 3), np.float32)
    boxes = [(0, 0, 7, 7), (20, 4, 27, 11), (12, 24, 19, 31)]
    for img, (x0, y0, x1, y1) in zip(images, boxes, strict=True):
        img[y0 : y1 + 1, x0 : x1 + 1, 0] = 255.0
        img[:, :, 1] = 200.0  # green everywhere: must not matter
    heats = gradcam(model, images, label_index=0)
    assert heats.shape == (3, 8, 8)
    assert np.isclose(heats.max(), 1.0)
    elsewhere = [(24, 24, 31, 31), (0, 24, 7, 31), (24, 0, 31, 7)]
    for heat, box, far in zip(heats, boxes, elsewhere, strict=True):
        assert peak_in_box(heat, box, (32, 32))
        assert not peak_in_box(heat, far, (32, 32))


def test_gradcam_is_zero_where_the_label_has_no_positive_evidence():
    model = _red_detector()
    images = np.zeros((1, 32, 32, 3), np.float32)
    images[0, :8, :8, 0] = 255.0
    against = gradcam(model, images, label_index=1)  # label 1 is *lowered* by red
    assert np.all(against == 0.0)
    flipped = gradcam(model, images, label_index=1, sign=-1.0)  # "below" alarm: evidence returns
    assert peak_in_box(flipped[0], (0, 0, 7, 7), (32, 32))


def test_colour_heat_uses_seed_001_colours():
    assert colour_for("error", 1) == (0, 0, 255)
    assert colour_for("break", 2) == (0, 255, 0)
    assert colour_for("length", 3) == (255, 0, 0)
    heat = np.ones((2, 2), np.float32)
    rgb = colour_heat([heat, heat * 0.5], [colour_for("error", 1), colour_for("break", 2)])
    assert rgb[0, 0].tolist() == [0, 127, 255]


def test_heat_colours_follow_label_position_not_name():
    assert colour_for("pitch_ok", 3) == colour_for("length", 3)
    assert colour_for("anything", 1) == colour_for("error", 1)


def test_montage_has_a_colour_legend_under_the_grid(tmp_path):
    import cv2

    from pi_inspect.train.plots import montage

    tiles = [np.full((32, 32, 3), 128, np.uint8)] * 3
    legend = {"error present": (0, 0, 255), "length absent": (255, 0, 0)}
    with_key = montage(tiles, ["a", "b", "c"], tmp_path / "key.png", legend=legend)
    without = montage(tiles, ["a", "b", "c"], tmp_path / "plain.png")
    for path, expected in ((with_key, True), (without, False)):
        bgr = cv2.imread(str(path))
        bottom = bgr[int(bgr.shape[0] * 0.6):]
        blue = np.all(bottom == (255, 0, 0), axis=-1).sum()  # BGR: pure blue patch
        red = np.all(bottom == (0, 0, 255), axis=-1).sum()
        assert (blue > 20 and red > 20) == expected, (path, blue, red)
