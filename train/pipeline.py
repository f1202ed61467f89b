"""tf.data input pipeline: parallel decode, cache, shuffle, augment, batch, prefetch.

Images are decoded by ``pi_inspect.edge.data.images.load_images`` (threads; OpenCV releases the GIL) which
resizes with ``pi_inspect.edge.preprocess.prepare`` -- the very function the Pi runs -- so training and the
edge cannot drift apart. The decoded uint8 arrays are the cache; at 96 px 10 000 images take
~280 MB. Unreadable images are dropped with one warning each.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from pi_inspect.edge.data.table import Dataset
from pi_inspect.edge.errors import DataError
from pi_inspect.train.augment_config import AugmentConfig

log = logging.getLogger(__name__)


@dataclass
class Decoded:
    """A data set decoded to model input: uint8 (n, h, w, 3) RGB, float32 targets, kept paths."""

    images: np.ndarray
    y: np.ndarray
    paths: list[str]
    labels: tuple[str, ...]
    task: str


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def decode(ds: Dataset, size: tuple[int, int], workers: int | None = None) -> Decoded:
    """Decode every image of ``ds`` at ``size`` = (w, h); drop (and warn about) unreadable ones."""
    from pi_inspect.edge.data.images import load_images

    images, ok = load_images(ds.paths, size, workers=workers or default_workers())
    if not ok.any():
        raise DataError(f"none of the {len(ds)} images could be read")
    keep = np.flatnonzero(ok)
    return Decoded(
        images=images[keep],
        y=np.asarray(ds.y, dtype=np.float32)[keep],
        paths=[str(ds.paths[i]) for i in keep],
        labels=tuple(ds.labels),
        task=ds.task,
    )


def make_dataset(
    images: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    training: bool,
    augment_cfg: AugmentConfig | None = None,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
):
    """A batched tf.data.Dataset of (float32 pixels 0..255, y[, weight]).

    Training data is shuffled each epoch and augmented with per-element stateless seeds drawn
    from a seeded random stream, so a run is reproducible yet every epoch sees new variants.
    """
    import tensorflow as tf

    from pi_inspect.train.augment import augment

    tensors = (images, y) if sample_weight is None else (images, y, sample_weight)
    data = tf.data.Dataset.from_tensor_slices(tensors).cache()
    if training:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    cfg = augment_cfg if training else None

    def to_float(img, *rest):
        return (tf.cast(img, tf.float32), *rest)

    data = data.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if cfg is not None and cfg.enabled():
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        data = tf.data.Dataset.zip((data, seeds))

        def aug(item, pair):
            img, *rest = item
            return (augment(img, cfg, tf.cast(pair % (2**31 - 1), tf.int32)), *rest)

        data = data.map(aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def decode_paths(
    paths, size: tuple[int, int], workers: int | None = None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Decode plain image paths; returns (uint8 images, kept paths, kept row indices)."""
    from pi_inspect.edge.data.images import load_images

    images, ok = load_images(list(paths), size, workers=workers or default_workers())
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        raise DataError(f"none of the {len(paths)} images could be read")
    return images[keep], [str(paths[i]) for i in keep], keep
