"""Grad-CAM from the Keras model (seed 001's heat maps), batched, plus colour overlays.

The gradient is taken of the label's *logit* (before the sigmoid/softmax, which saturates), at
the ``features`` layer. For a label whose alarm is "below" (seed 001's ``length``: 4 mm is the
defect) the negated logit is used, so the map shows the evidence for the alarm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# RGB colours by label position (no label name is special): in seed 001's order
# good, error, break, length that is error blue, break green, length red.
PALETTE = (
    (255, 255, 0),
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (255, 255, 255),
)


def colour_for(label: str, index: int) -> tuple[int, int, int]:
    """The heat colour of the label at ``index`` in the run's label order."""
    return PALETTE[index % len(PALETTE)]


def _grad_model(model):
    import keras

    return keras.Model(
        model.inputs, [model.get_layer("features").output, model.get_layer("logits").output]
    )


def gradcam(
    model, images: np.ndarray, label_index: int, sign: float = 1.0, batch_size: int = 32
) -> np.ndarray:
    """Heat maps (n, fh, fw) in [0, 1] at feature-map resolution for one label.

    ``images`` are uint8/float (n, h, w, 3) RGB at the model's input size. A map is
    ReLU(sum_c mean(dlogit/dA_c) * A_c) divided by its maximum (all zeros if nothing is positive).
    """
    import tensorflow as tf

    grad_model = _grad_model(model)
    out = []
    for start in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))
        with tf.GradientTape() as tape:
            fmap, logits = grad_model(x, training=False)
            target = sign * logits[:, label_index]
        grads = tape.gradient(target, fmap)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)
        cam = np.divide(
            cam, peak[:, None, None], out=np.zeros_like(cam), where=peak[:, None, None] > 0
        )
        out.append(cam.astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 1, 1), np.float32)


def upsample(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one heat map to ``size`` = (w, h)."""
    import cv2

    return cv2.resize(
        heat.astype(np.float32), (int(size[0]), int(size[1])), interpolation=cv2.INTER_LINEAR
    )


def colour_heat(heats: Sequence[np.ndarray], colours: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Combine per-label heat maps (same shape, [0, 1]) into one RGB uint8 image, one colour each."""
    if not heats:
        raise ValueError("no heat maps to combine")
    h, w = heats[0].shape
    rgb = np.zeros((h, w, 3), dtype=np.float32)
    for heat, colour in zip(heats, colours, strict=True):
        rgb += heat[:, :, None] * np.asarray(colour, dtype=np.float32)[None, None, :]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def overlay(image_rgb: np.ndarray, heat_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured heat map onto the image (seed 001: cv2.addWeighted)."""
    import cv2

    return cv2.addWeighted(
        image_rgb.astype(np.uint8), 1.0 - alpha, heat_rgb.astype(np.uint8), alpha, 0.0
    )
