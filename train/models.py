"""Model builders: every architecture follows the converter contract.

``pixels`` (float32, raw 0..255 RGB) -> preprocessing layers -> backbone -> ``features`` (last
conv feature map) -> ``gap`` -> [Dropout] -> [``head_hidden_i``] -> ``logits`` -> ``scores``.
Preprocessing lives inside the model so the Pi only resizes (pi_inspect.edge.preprocess.prepare). No Lambda
layers: they neither serialise nor convert well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from pi_inspect.edge.errors import ConfigError

ARCHS = ("cnn", "resnet", "mobilenetv2", "efficientnetb0", "resnet50")
TRANSFER_ARCHS = ("mobilenetv2", "efficientnetb0", "resnet50")
TASKS = ("multilabel", "multiclass")
MIN_SIZE = {"cnn": 16, "resnet": 16, "mobilenetv2": 32, "efficientnetb0": 32, "resnet50": 32}
BACKBONE_NAME = "backbone"
# BatchNorm's running statistics follow the batches this fast. Keras' 0.99 needs several
# hundred steps to forget its initial values; a few hundred images make a few dozen steps, and
# the evaluated model (running statistics) then predicts one class everywhere while training
# accuracy climbs. 0.9 settles within a few dozen steps and costs large sets nothing.
BN_MOMENTUM = 0.9
# Caffe-style ImageNet means (BGR order) used by keras.applications.resnet50.preprocess_input.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides a model's structure (stored in run.json)."""

    arch: str
    size: tuple[int, int]  # (width, height)
    n_outputs: int
    task: str = "multilabel"
    weights: str = "none"  # "none", "imagenet" or a weights file
    alpha: float = 0.35  # mobilenetv2 width multiplier
    head_hidden: tuple[int, ...] = field(default_factory=tuple)
    dropout: float = 0.2

    def validate(self) -> None:
        """Raise ConfigError for anything the builders cannot honour."""
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown --arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}")
        if min(self.size) < MIN_SIZE[self.arch]:
            raise ConfigError(
                f"--size {min(self.size)} is too small for {self.arch} "
                f"(minimum {MIN_SIZE[self.arch]} px)"
            )
        if self.n_outputs < 1:
            raise ConfigError("a model needs at least one label")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("--dropout must be in [0, 1)")
        if self.weights not in ("none", "imagenet") and not Path(self.weights).is_file():
            raise ConfigError(f"--weights {self.weights}: no such file")
        if self.weights == "imagenet" and self.arch not in TRANSFER_ARCHS:
            raise ConfigError(
                f"--weights imagenet needs a transfer arch ({', '.join(TRANSFER_ARCHS)})"
            )


def build_model(spec: ModelSpec) -> keras.Model:
    """Build (not compile) the model for ``spec``; see the module docstring for its layout."""
    spec.validate()
    width, height = spec.size
    pixels = keras.Input(shape=(height, width, 3), name="pixels", dtype="float32")
    builder = {
        "cnn": _cnn,
        "resnet": _resnet,
        "mobilenetv2": _mobilenetv2,
        "efficientnetb0": _efficientnetb0,
        "resnet50": _resnet50,
    }[spec.arch]
    try:
        fmap = builder(pixels, spec)
    except Exception as exc:  # keras raises a bare Exception for a failed download
        if spec.weights == "none":
            raise
        # keras.applications downloads 'imagenet' weights: offline machines land here.
        raise ConfigError(
            f"cannot load {spec.arch} weights {spec.weights!r} ({str(exc).splitlines()[0][:120]}); "
            "put the Keras 'notop' weights file in ~/.keras/models/ or pass --weights FILE"
        ) from exc
    features = layers.Activation("linear", name="features")(fmap)
    x = layers.GlobalAveragePooling2D(name="gap")(features)
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, name="head_dropout")(x)
    for i, units in enumerate(spec.head_hidden):
        x = layers.Dense(int(units), activation="relu", name=f"head_hidden_{i}")(x)
    logits = layers.Dense(spec.n_outputs, name="logits")(x)
    activation = "sigmoid" if spec.task == "multilabel" else "softmax"
    scores = layers.Activation(activation, name="scores", dtype="float32")(logits)
    model = keras.Model(pixels, scores, name=f"pi_inspect_{spec.arch}")
    if spec.arch not in TRANSFER_ARCHS and spec.weights not in ("none", "imagenet"):
        model.load_weights(spec.weights)
    return model


def backbone(model: keras.Model) -> keras.Model | None:
    """The pretrained base of a transfer-learning model (to freeze / unfreeze), else None."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        return None


def _conv_bn_relu(x, filters: int, name: str, strides: int = 1):
    x = layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _cnn(pixels, spec: ModelSpec):
    """The seeds' small conv net (16-32-64-128-128 filters), with BatchNorm after every conv.

    Pools three times, not four, so a 96 px input keeps a 12x12 feature map: Grad-CAM needs
    that resolution to point at a single stitch. The first conv has 16 filters, not the seeds'
    32: at full resolution it took ~40 % of the training time, and three colour channels do not
    need 32 detectors (measured: 31 s -> 19 s per 5 100 images at 96 px on 2 cores).

    The pooled blocks run conv -> max pool -> BatchNorm -> ReLU. Max pooling commutes with
    ReLU and with a positive per-channel scale, so this is the usual conv -> BN -> ReLU -> pool
    block (``pi_inspect.convert.fold`` folds it back for int8), but BatchNorm and ReLU touch a quarter of
    the pixels; at 96 px those memory-bound passes were most of the step. Measured 1.2-1.6x the
    training throughput (bench/train_step.py, docs/benchmarks.md). Strided convs instead of
    pools were faster still but never started learning: a 1 px thread needs the max.
    """
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(pixels)
    for i, filters in enumerate((16, 32, 64)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
    x = _conv_bn_relu(x, 128, "block3")
    return _conv_bn_relu(x, 128, "block4")


def _residual_block(x, filters: int, downsample: bool, name: str):
    """Seed 001's block: conv-relu-bn, conv, (1x1 conv shortcut when downsampling), add, relu-bn."""
    y = layers.Conv2D(
        filters, 3, strides=2 if downsample else 1, padding="same", name=f"{name}_conv1"
    )(x)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(y)
    if downsample:
        x = layers.Conv2D(filters, 1, strides=2, padding="same", name=f"{name}_short")(x)
    out = layers.Add(name=f"{name}_add")([x, y])
    out = layers.ReLU(name=f"{name}_relu2")(out)
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(out)


def _resnet(pixels, spec: ModelSpec):
    """Seed 001's residual net: BN on the input, a 3x3 stem, blocks 2-4-2, 64 filters doubling.

    Seed 001 ended in AveragePooling2D(4) + Flatten; the contract's GlobalAveragePooling2D head
    replaces that so the model works at any input size and exposes one feature map.
    """
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(pixels)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="input_bn")(x)
    x = layers.Conv2D(64, 3, padding="same", name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    filters = 64
    for stage, blocks in enumerate((2, 4, 2)):
        for j in range(blocks):
            x = _residual_block(
                x, filters, downsample=(j == 0 and stage != 0), name=f"s{stage}b{j}"
            )
        filters *= 2
    return x


def _applications_weights(spec: ModelSpec) -> str | None:
    """keras.applications takes None, 'imagenet' (downloaded once into ~/.keras/models) or a file."""
    return None if spec.weights == "none" else spec.weights


def _mobilenetv2(pixels, spec: ModelSpec):
    """MobileNetV2 expects [-1, 1]: one Rescaling layer does it."""
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(pixels)
    base = keras.applications.MobileNetV2(
        input_shape=(spec.size[1], spec.size[0], 3),
        alpha=spec.alpha,
        include_top=False,
        weights=_applications_weights(spec),
        name=BACKBONE_NAME,
    )
    return base(x)


def _efficientnetb0(pixels, spec: ModelSpec):
    """EfficientNetB0 rescales and normalises inside itself: it takes 0..255 RGB as is."""
    base = keras.applications.EfficientNetB0(
        input_shape=(spec.size[1], spec.size[0], 3),
        include_top=False,
        weights=_applications_weights(spec),
        name=BACKBONE_NAME,
    )
    return base(pixels)


def caffe_preprocess_layer() -> layers.Conv2D:
    """RGB -> BGR and ImageNet mean subtraction as one frozen 1x1 convolution (no Lambda).

    A permutation kernel swaps the channels and the bias subtracts the means: exactly
    keras.applications.resnet50.preprocess_input, but a built-in layer that converts to int8.
    """
    kernel = np.zeros((1, 1, 3, 3), dtype="float32")
    for out_ch, in_ch in enumerate((2, 1, 0)):
        kernel[0, 0, in_ch, out_ch] = 1.0
    bias = -np.asarray(CAFFE_MEAN_BGR, dtype="float32")
    conv = layers.Conv2D(
        3,
        1,
        name="caffe_bgr_mean",
        trainable=False,
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
    )
    return conv


def _resnet50(pixels, spec: ModelSpec):
    x = caffe_preprocess_layer()(pixels)
    base = keras.applications.ResNet50(
        input_shape=(spec.size[1], spec.size[0], 3),
        include_top=False,
        weights=_applications_weights(spec),
        name=BACKBONE_NAME,
    )
    return base(x)


def parse_hidden(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """``"64,32"`` -> (64, 32); empty/None -> ()."""
    if text is None or text == "":
        return ()
    if not isinstance(text, str):
        return tuple(int(v) for v in text)
    try:
        units = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"--head-hidden {text!r}: expected integers like 64,32") from exc
    if any(u < 1 for u in units):
        raise ConfigError("--head-hidden units must be positive")
    return units
