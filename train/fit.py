"""Train one model into a run directory: data, model, callbacks, phases, run.json.

Transfer archs with pretrained weights train in two phases (frozen backbone, then fine-tune
with a 10x smaller learning rate); everything else trains end to end in one phase.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.errors import ConfigError, DataError
from pi_inspect.train import runs
from pi_inspect.train.augment_config import AugmentConfig
from pi_inspect.train.models import TRANSFER_ARCHS, ModelSpec

log = logging.getLogger(__name__)
VALID_FRACTION = 0.15
SCHEDULES = ("plateau", "cosine")


@dataclass
class TrainConfig:
    """Every option of ``pi-inspect train`` (stored verbatim in run.json["config"])."""

    data: str
    out: str
    arch: str = "cnn"
    size: int = 96
    epochs: int = 30
    valid: str | None = None
    weights: str = "none"
    alpha: float = 0.35
    head_hidden: tuple[int, ...] = ()
    dropout: float = 0.2
    batch_size: int = 32
    learning_rate: float = 1e-3
    schedule: str = "plateau"  # plateau (halve on a val-loss plateau) | cosine (decay to 1 % by the end)
    fine_tune_epochs: int = 10
    patience: int = 6
    weighting: str = "balanced"  # balanced | none
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0
    workers: int | None = None
    deterministic: bool = True
    verbose: int | None = None  # Keras fit verbosity; None = bar on a terminal, a line otherwise
    view: dict[str, Any] | None = None  # the station's region/rotation the data was cut with
    init: str | None = None  # an earlier run to start from (train --init)

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.size), int(self.size))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head_hidden"] = list(self.head_hidden)
        return d


@dataclass
class Splits:
    train: Any  # pi_inspect.edge.data.table.Dataset
    valid: Any
    paths: dict[str, str]  # split name -> absolute CSV path


def load_splits(cfg: TrainConfig, run_dir: Path) -> Splits:
    """Explicit --valid, or split --data group-wise (valid 0.15) and write the CSVs into RUN/.

    Data from one recording (a single group of ``<video>_<index>`` frames) cannot be split
    group-wise: its valid frames are cut from it in time blocks with a gap at each cut instead.
    """
    from pi_inspect.edge.data.blocks import one_recording, recording_gaps
    from pi_inspect.edge.data.split import write_split
    from pi_inspect.edge.data.table import read_dataset, read_table

    data = read_dataset(cfg.data)
    if cfg.valid:
        valid = read_dataset(cfg.valid)
        if tuple(valid.labels) != tuple(data.labels):
            raise DataError(
                f"--valid labels {list(valid.labels)} differ from --data labels {list(data.labels)}"
            )
        paths = {"train": str(Path(cfg.data).absolute()), "valid": str(Path(cfg.valid).absolute())}
        return Splits(train=data, valid=valid, paths=paths)
    by, gap = "group", None
    if one_recording(data):
        by, gap = "time", recording_gaps(data)[data.sources[0]]
        log.info(
            "%s is one recording (%s): validation frames are cut from it in time blocks, "
            "%d frames clear of training frames",
            cfg.data, data.sources[0], gap,
        )  # fmt: skip
    written = write_split(
        data, run_dir, valid=VALID_FRACTION, test=0.0, seed=cfg.seed, by=by, gap=gap
    )
    if "train" not in written or "valid" not in written:
        raise DataError(
            f"{cfg.data}: too few images/groups to split off a validation set; pass --valid"
        )
    parts = {name: read_table(path, task=data.task) for name, path in written.items()}
    return Splits(
        train=parts["train"],
        valid=parts["valid"],
        paths={name: str(Path(path).absolute()) for name, path in written.items()},
    )


def _learning_rate(cfg: TrainConfig, base: float, epochs: int, steps_per_epoch: int):
    """A float for ``plateau`` (the callback lowers it), a cosine decay over the phase otherwise.

    A fixed epoch budget is spent best by decaying smoothly to a small rate at its very end:
    the last epochs then polish instead of bouncing, which is what a short demo run needs.
    """
    import keras

    if cfg.schedule == "plateau":
        return base
    return keras.optimizers.schedules.CosineDecay(
        base, decay_steps=max(1, epochs * steps_per_epoch), alpha=0.01
    )


def _compile(model, task: str, y_train: np.ndarray, cfg: TrainConfig, learning_rate):
    import keras

    from pi_inspect.train.losses import WeightedBinaryCrossentropy, positive_weights

    if task == "multilabel":
        if cfg.weighting == "balanced":
            loss = WeightedBinaryCrossentropy(positive_weights(y_train).tolist())
        else:
            loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
    else:
        loss = keras.losses.CategoricalCrossentropy()
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)


def _callbacks(run_dir: Path, patience: int, append: bool, plateau: bool = True) -> list:
    """Checkpoint, early stopping, [plateau LR], and history.csv with the epoch's learning rate."""
    import keras

    class LogLearningRate(keras.callbacks.Callback):
        """Put the rate the epoch trained with into its logs, whatever the schedule."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = float(
                    keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
                )

    callbacks = [LogLearningRate()]
    if plateau:
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.5, patience=max(1, patience // 2)
            )
        )
    return callbacks + [
        keras.callbacks.ModelCheckpoint(
            str(run_dir / runs.MODEL_FILE), monitor="val_loss", save_best_only=True, verbose=0
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(str(run_dir / runs.HISTORY_FILE), append=append),
    ]


def _seed_everything(cfg: TrainConfig) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


def _sample_weights(task: str, y: np.ndarray, weighting: str) -> np.ndarray | None:
    """Multi-class imbalance goes through per-sample weights (the sigmoid loss weighs itself)."""
    from pi_inspect.train.losses import class_weights

    if task != "multiclass" or weighting != "balanced":
        return None
    return class_weights(y)[np.argmax(y, axis=1)].astype(np.float32)


def train(cfg: TrainConfig) -> Path:
    """Train per ``cfg``; returns the run directory holding model.keras, run.json, history, curves."""
    if cfg.weighting not in ("balanced", "none"):
        raise ConfigError(f"--weighting {cfg.weighting!r}: choose balanced or none")
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(f"--schedule {cfg.schedule!r}: choose {' or '.join(SCHEDULES)}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be at least 1")
    run_dir = Path(cfg.out).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    splits = load_splits(cfg, run_dir)
    labels = tuple(splits.train.labels)
    task = splits.train.task
    from pi_inspect.edge.data.meanings import meanings_for

    meanings, declaration = meanings_for(cfg.data, labels)
    if declaration is None:
        log.warning(
            "%s declares no label meanings (no dataset.toml): every label alarms when present",
            cfg.data,
        )
    else:
        shutil.copyfile(declaration, run_dir / declaration.name)
    spec = ModelSpec(
        arch=cfg.arch,
        size=cfg.input_size,
        n_outputs=len(labels),
        task=task,
        weights=cfg.weights,
        alpha=cfg.alpha,
        head_hidden=tuple(cfg.head_hidden),
        dropout=cfg.dropout,
    )
    spec.validate()

    from pi_inspect.train.pipeline import decode, make_dataset

    train_data = decode(splits.train, cfg.input_size, cfg.workers)
    valid_data = decode(splits.valid, cfg.input_size, cfg.workers)
    log.info(
        "train %d images, valid %d images, labels %s (%s)",
        len(train_data.y),
        len(valid_data.y),
        list(labels),
        task,
    )

    info = _run_info(cfg, spec, labels, task, splits, meanings)
    runs.write_json(run_dir / runs.RUN_FILE, info)

    _seed_everything(cfg)
    from pi_inspect.train.models import backbone, build_model

    model = build_model(spec)
    if cfg.init:
        from pi_inspect.train.warm import warm_start

        info["init"] = warm_start(model, cfg.init, list(labels), task)
    weights = _sample_weights(task, train_data.y, cfg.weighting)
    train_ds = make_dataset(
        train_data.images, train_data.y, cfg.batch_size, True, cfg.augment, cfg.seed, weights
    )
    valid_ds = make_dataset(valid_data.images, valid_data.y, cfg.batch_size, False)
    verbose = cfg.verbose if cfg.verbose is not None else (1 if sys.stderr.isatty() else 2)

    base = backbone(model)
    two_phase = spec.arch in TRANSFER_ARCHS and cfg.weights != "none" and base is not None
    if two_phase:
        base.trainable = False
    steps = int(np.ceil(len(train_data.y) / cfg.batch_size))
    plateau = cfg.schedule == "plateau"
    _compile(
        model, task, train_data.y, cfg, _learning_rate(cfg, cfg.learning_rate, cfg.epochs, steps)
    )
    hist = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=cfg.epochs,
        verbose=verbose,
        shuffle=False,
        callbacks=_callbacks(run_dir, cfg.patience, append=False, plateau=plateau),
    )
    done = len(hist.history.get("loss", []))
    if two_phase and cfg.fine_tune_epochs > 0:
        log.info(
            "fine-tuning the whole %s backbone for up to %d epochs", spec.arch, cfg.fine_tune_epochs
        )
        base.trainable = True
        rate = _learning_rate(cfg, cfg.learning_rate / 10, cfg.fine_tune_epochs, steps)
        _compile(model, task, train_data.y, cfg, rate)
        model.fit(
            train_ds,
            validation_data=valid_ds,
            initial_epoch=done,
            epochs=done + cfg.fine_tune_epochs,
            verbose=verbose,
            shuffle=False,
            callbacks=_callbacks(run_dir, cfg.patience, append=True, plateau=plateau),
        )

    from pi_inspect.train.learned import judge, refuse_unless_learned
    from pi_inspect.train.plots import training_curves

    training_curves(run_dir / runs.HISTORY_FILE, run_dir / runs.CURVES_FILE)
    validation = judge(task, labels, valid_data.y, model.predict(valid_ds, verbose=0))
    info["validation"] = validation.to_dict()
    info["train_seconds"] = round(time.monotonic() - started, 1)
    runs.write_json(run_dir / runs.RUN_FILE, info)
    log.info(
        "run written to %s in %.0f s: validation balanced accuracy %.3f (chance %.2f)",
        run_dir, info["train_seconds"], validation.balanced_accuracy, validation.chance,
    )  # fmt: skip
    refuse_unless_learned(validation, run_dir)
    return run_dir


def _run_info(
    cfg: TrainConfig, spec: ModelSpec, labels, task: str, splits: Splits, meanings
) -> dict[str, Any]:
    from pi_inspect.edge.data.meanings import directions

    every = list(splits.train.paths) + list(splits.valid.paths)
    y_all = np.concatenate([splits.train.y, splits.valid.y])
    return {
        "arch": spec.arch,
        "task": task,
        "labels": list(labels),
        "input_size": [spec.size[0], spec.size[1]],
        "feature_layer": runs.FEATURE_LAYER,
        "head_hidden": list(spec.head_hidden),
        "weights": spec.weights,
        "meanings": {label: m.to_dict() for label, m in meanings.items()},
        "alarms": directions(meanings),
        "data": {
            "path": str(Path(cfg.data).absolute()),
            "sha256": runs.data_hash(every, y_all),
            "count": len(every),
        },
        "splits": splits.paths,
        "config": cfg.to_dict(),
        "versions": runs.versions(),
        "seed": cfg.seed,
        "view": cfg.view,
    }
