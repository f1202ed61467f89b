"""The seeds' augmentations as TensorFlow ops on one float32 0..255 RGB image, each switchable.

brightness/contrast (seed 001: ``convertScaleAbs`` with alpha 0.8..1.2, beta 0..15, on ~70 % of
images), roll (seed 001: cut a top band and append it at the bottom), flips, rotation, zoom and
shift (seed 004's ImageDataGenerator ranges), and a gaussian blur. Every op is label-preserving
for seam images: it never removes the stitch it moves.
"""

from __future__ import annotations

import math

import tensorflow as tf

from pi_inspect.train.augment_config import NAMES, AugmentConfig

__all__ = ["NAMES", "AugmentConfig", "augment", "brightness_contrast", "gaussian_blur", "roll_band"]


def _coin(p: float, seed) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed=seed) < p


def brightness_contrast(img: tf.Tensor, seed) -> tf.Tensor:
    """Seed 001: ``img * alpha + beta`` with alpha in [0.8, 1.2], beta in [0, 15], clipped."""
    s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    alpha = 0.8 + 0.4 * tf.random.stateless_uniform([], seed=s1)
    beta = 15.0 * tf.random.stateless_uniform([], seed=s2)
    return tf.clip_by_value(img * alpha + beta, 0.0, 255.0)


def roll_band(img: tf.Tensor, seed) -> tf.Tensor:
    """Seed 001: cut a top band (up to half the height) and append it at the bottom."""
    height = tf.shape(img)[0]
    band = tf.random.stateless_uniform(
        [], seed=seed, minval=0, maxval=height // 2 + 1, dtype=tf.int32
    )
    return tf.roll(img, shift=-band, axis=0)


def gaussian_blur(img: tf.Tensor, sigma: tf.Tensor, radius: int = 2) -> tf.Tensor:
    """Separable gaussian blur of an (h, w, 3) image with a (2 * radius + 1) kernel."""
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    batch = img[None]
    kx = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    ky = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    batch = tf.pad(batch, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    batch = tf.nn.depthwise_conv2d(batch, kx, [1, 1, 1, 1], "VALID")
    batch = tf.nn.depthwise_conv2d(batch, ky, [1, 1, 1, 1], "VALID")
    return batch[0]


def _affine(img: tf.Tensor, cfg: AugmentConfig, seed) -> tf.Tensor:
    """Rotation, zoom and shift as one projective transform (reflect fill, bilinear)."""
    shape = tf.shape(img)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    seeds = tf.random.experimental.stateless_split(seed, 4)
    angle = 0.0
    if cfg.rotation:
        limit = cfg.rotation_deg * math.pi / 180.0
        angle = tf.random.stateless_uniform([], seed=seeds[0], minval=-limit, maxval=limit)
    scale = 1.0
    if cfg.zoom:
        scale = tf.random.stateless_uniform(
            [], seed=seeds[1], minval=1.0 - cfg.zoom_range, maxval=1.0 + cfg.zoom_range
        )
    tx = ty = 0.0
    if cfg.shift:
        tx = w * tf.random.stateless_uniform(
            [], seed=seeds[2], minval=-cfg.shift_range, maxval=cfg.shift_range
        )
        ty = h * tf.random.stateless_uniform(
            [], seed=seeds[3], minval=-cfg.shift_range, maxval=cfg.shift_range
        )
    cos = tf.cos(angle) / scale
    sin = tf.sin(angle) / scale
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # output (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): rotate/zoom about the centre
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * cx - a1 * cy - tx
    b2 = cy - b0 * cx - b1 * cy - ty
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])
    transform = tf.cast(tf.reshape(transform, [1, 8]), tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=img[None],
        transforms=transform,
        output_shape=shape[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return out[0]


def augment(img: tf.Tensor, cfg: AugmentConfig, seed) -> tf.Tensor:
    """Apply the enabled augmentations to one float32 (h, w, 3) image; ``seed`` is a [2] int tensor."""
    seeds = tf.random.experimental.stateless_split(seed, 10)
    if cfg.brightness:
        img = tf.cond(
            _coin(cfg.brightness_p, seeds[0]),
            lambda: brightness_contrast(img, seeds[1]),
            lambda: img,
        )
    if cfg.roll:
        img = tf.cond(_coin(0.5, seeds[2]), lambda: roll_band(img, seeds[3]), lambda: img)
    if cfg.hflip:
        img = tf.cond(_coin(0.5, seeds[4]), lambda: tf.reverse(img, axis=[1]), lambda: img)
    if cfg.vflip:
        img = tf.cond(_coin(0.5, seeds[5]), lambda: tf.reverse(img, axis=[0]), lambda: img)
    if cfg.rotation or cfg.zoom or cfg.shift:
        img = _affine(img, cfg, seeds[6])
    if cfg.blur:
        sigma = tf.random.stateless_uniform(
            [], seed=seeds[8], minval=0.3, maxval=cfg.blur_sigma_max
        )
        img = tf.cond(_coin(cfg.blur_p, seeds[7]), lambda: gaussian_blur(img, sigma), lambda: img)
    return tf.clip_by_value(img, 0.0, 255.0)
