#!/usr/bin/env python3
"""Training throughput of the cnn's block layouts, measured side by side in one run.

    python bench/train_step.py [--size 96] [--batch 64] [--rounds 6] [--images 512]

``pool-first`` is the shipped ``cnn`` (conv -> max pool -> BatchNorm -> ReLU in the three
pooled blocks); ``bn-first`` is the same net in the usual conv -> BatchNorm -> ReLU -> pool
order. Both train on the same random batches in interleaved rounds, so machine noise falls on
both; prints images per second and the pool-first / bn-first throughput ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def bn_first_cnn(size: int):
    """The cnn with conv -> BN -> ReLU -> pool blocks (the layout it had before)."""
    import keras
    from keras import layers

    from pi_inspect.train.models import _conv_bn_relu

    pixels = keras.Input(shape=(size, size, 3), name="pixels")
    x = layers.Rescaling(1.0 / 255.0)(pixels)
    for i, filters in enumerate((16, 32, 64)):
        x = _conv_bn_relu(x, filters, f"block{i}")
        x = layers.MaxPooling2D(2)(x)
    x = _conv_bn_relu(x, 128, "block3")
    x = _conv_bn_relu(x, 128, "block4")
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(pixels, layers.Dense(4, activation="sigmoid")(x))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--images", type=int, default=512)
    args = ap.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from pi_inspect.train.models import ModelSpec, build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, args.size, args.size, 3)).astype("float32")
    y = (rng.random((args.images, 4)) > 0.5).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).cache().prefetch(2)
    models = {
        "pool-first": build_model(ModelSpec("cnn", (args.size, args.size), 4, dropout=0.0)),
        "bn-first": bn_first_cnn(args.size),
    }
    for model in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(data, epochs=1, verbose=0)  # trace and warm up
    seconds = dict.fromkeys(models, 0.0)
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.monotonic()
            model.fit(data, epochs=1, verbose=0)
            seconds[name] += time.monotonic() - start
    done = args.rounds * args.images
    for name, s in seconds.items():
        print(f"{name:10s} {done / s:6.0f} images/s")
    ratio = seconds["bn-first"] / seconds["pool-first"]
    print(f"RESULT pool-first / bn-first training throughput = {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
