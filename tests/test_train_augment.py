"""The augmentations do what the seeds describe, are switchable, and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pi_inspect.edge.errors import ConfigError
from pi_inspect.train.augment import NAMES, AugmentConfig, augment, brightness_contrast, roll_band
from pi_inspect.train.pipeline import make_dataset


def _images(n=6, size=24):
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_all_augmentations_off_is_the_identity():
    imgs = _images()
    cfg = AugmentConfig.from_names("none")
    assert cfg.enabled() == []
    ds = make_dataset(imgs, np.zeros((len(imgs), 2), np.float32), 64, True, cfg, seed=0)
    batch = next(iter(ds))[0].numpy()
    # shuffled, so compare as sets of images
    assert sorted(map(bytes, batch.astype(np.uint8))) == sorted(map(bytes, imgs))


def test_roll_moves_a_top_band_to_the_bottom():
    img = np.arange(10 * 4 * 3, dtype=np.float32).reshape(10, 4, 3)
    out = roll_band(tf.constant(img), tf.constant([3, 4])).numpy()
    k = int(np.flatnonzero((img == out[0]).all(axis=(1, 2)))[0])  # which input row is now on top
    assert np.array_equal(out, np.concatenate([img[k:], img[:k]]))
    assert 0 <= k <= 5


def test_brightness_contrast_stays_in_seed_001_ranges():
    img = tf.fill((4, 4, 3), 100.0)
    for s in range(20):
        out = brightness_contrast(img, tf.constant([s, 1])).numpy()
        assert 80.0 <= out.min() <= out.max() <= 135.0
        assert np.allclose(out, out.flat[0])  # one alpha/beta per image


def test_every_augmentation_keeps_shape_and_pixel_range():
    cfg = AugmentConfig.from_names(",".join(NAMES))
    img = tf.constant(_images(1, 32)[0].astype(np.float32))
    for s in range(5):
        out = augment(img, cfg, tf.constant([s, 7])).numpy()
        assert out.shape == (32, 32, 3)
        assert out.min() >= 0.0 and out.max() <= 255.0


def test_same_seed_same_augmented_batches_different_seed_different():
    imgs = _images()
    y = np.zeros((len(imgs), 1), np.float32)
    cfg = AugmentConfig.from_names("brightness,roll,blur,rotation")

    def first(seed):
        return next(iter(make_dataset(imgs, y, 64, True, cfg, seed=seed)))[0].numpy()

    assert np.array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


def test_unknown_augmentation_name_is_a_config_error():
    with pytest.raises(ConfigError, match="sparkle"):
        AugmentConfig.from_names("roll,sparkle")
