"""``pi-inspect train --task anomaly``: learn the good parts, calibrate a threshold, write a run.

The good images are split into a training part and a held-out part (``holdout``, seeded). The
model trains on the training part, each epoch with fresh pseudo-defects (``pseudo``); the
held-out good images then set the threshold: the score that only ``false_alarms`` of good
images exceed (``threshold``: a tolerance bound where they are too few to show it).
``pi-inspect convert`` recalibrates it on the int8 model's own scores.

The budget is in optimizer steps: without ``--epochs``, a small set trains for as many epochs
as ``MIN_STEPS`` steps need (a few hundred images make a handful of steps an epoch); early
stopping usually ends it sooner. The
held-out good images, and the same images with fresh pseudo-defects, are the validation signal:
their AUROC is measured every ``EVAL_STEPS`` steps, the best weights are kept, and training
stops early once it has not improved for ``PATIENCE`` measurements. A model whose best AUROC
stays under ``MIN_AUROC`` learned nothing: the run is written, and training ends with one
"did not learn" line (exit 3).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.errors import ConfigError, DataError, DidNotLearn
from pi_inspect.train import runs
from pi_inspect.train.anomaly.pseudo import KINDS
from pi_inspect.train.anomaly.threshold import calibrate

log = logging.getLogger(__name__)

LABEL = "anomaly"
MIN_STEPS = 2000  # optimizer steps a default run takes at most, however few the images
EVAL_STEPS = 100  # steps between two validation measurements
PATIENCE = 4  # measurements without improvement before training stops
MIN_AUROC = 0.6  # held-out pseudo-defect AUROC under which a model learned nothing
MEANING = {"alarm": "present", "meaning": "unlike the good parts the model was trained on"}
TRAIN_SPLIT = "train_good.csv"
HOLDOUT_SPLIT = "holdout_good.csv"


@dataclass
class AnomalyConfig:
    """Every option of ``pi-inspect train --task anomaly`` (stored in run.json["config"])."""

    data: str
    out: str
    size: int = 96
    epochs: int | None = None  # None: enough epochs for MIN_STEPS steps (24 at least)
    batch_size: int = 64
    learning_rate: float = 2e-3
    false_alarms: float = 0.005  # share of good images allowed over the threshold
    holdout: float = 0.15
    pseudo_defects: float = 0.5  # share of training images given a pseudo-defect
    kinds: tuple[str, ...] = KINDS  # pseudo-defect kinds (train/anomaly/pseudo.py)
    crop: int = 64  # train on crops this size (0: whole images); the model is convolutional
    seed: int = 0
    workers: int | None = None
    deterministic: bool = True
    verbose: int | None = None
    view: dict[str, Any] | None = None
    init: str | None = None  # an earlier anomaly run to start from (train --init)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.size), int(self.size))

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The epochs to train: as given, or as many as ``MIN_STEPS`` steps need."""
        if self.epochs is not None:
            return self.epochs
        return max(24, -(-MIN_STEPS // max(1, steps_per_epoch)))

    def validate(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be at least 1")
        if self.size < 16:
            raise ConfigError(f"--size {self.size} is too small (minimum 16 px)")
        if self.crop and (self.crop % 8 or not self.crop >= 16):
            raise ConfigError(f"crop {self.crop}: a multiple of 8, at least 16")
        if not 0.0 < self.false_alarms < 0.5:
            raise ConfigError("--false-alarms must be in (0, 0.5)")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ConfigError(f"pseudo-defect kinds {unknown}: choose from {', '.join(KINDS)}")


def good_paths(data: str | Path) -> list[Path]:
    """The good images of ``data``: a flat folder of images (all good), or a lookup table /
    class-folder set whose ``good`` label is true."""
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.train.inputs import read_image_set

    image_set = read_image_set(data)
    if image_set.dataset is None:
        return list(image_set.paths)
    ds = image_set.dataset
    if "good" not in ds.labels:
        ds = read_dataset(data)  # the same error path as any other bad data set
        raise DataError(
            f"{data}: no 'good' label among {list(ds.labels)}; give a folder of good images "
            "or a data set with a 'good' label or class"
        )
    column = list(ds.labels).index("good")
    return [p for p, y in zip(ds.paths, ds.y, strict=True) if y[column] > 0.5]


def split_good(paths: list[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out) good images, seeded; at least 20 held out to calibrate on."""
    if len(paths) < 40:
        raise DataError(f"{len(paths)} good images: anomaly training needs at least 40")
    order = np.random.default_rng(seed).permutation(len(paths))
    n = max(20, int(round(holdout * len(paths))))
    held = sorted(int(i) for i in order[:n])
    kept = sorted(int(i) for i in order[n:])
    return [paths[i] for i in kept], [paths[i] for i in held]


def write_good_split(path: Path, paths: list[Path]) -> None:
    from pi_inspect.edge.data.table import write_table

    write_table(path, [str(Path(p).absolute()) for p in paths], ("good",), [[True]] * len(paths))


def crop_batch(
    images: np.ndarray, maps: np.ndarray, crop: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``crop`` px square of each image and the matching cells of its map (offsets on the
    map grid, so every crop cell is one whole map cell)."""
    from pi_inspect.train.anomaly.model import STRIDE

    n, h, w = images.shape[:3]
    k = crop // STRIDE
    oy = rng.integers(0, (h - crop) // STRIDE + 1, size=n)
    ox = rng.integers(0, (w - crop) // STRIDE + 1, size=n)
    xs = np.empty((n, crop, crop, 3), images.dtype)
    ms = np.empty((n, k, k), maps.dtype)
    for i in range(n):
        y, x = oy[i] * STRIDE, ox[i] * STRIDE
        xs[i] = images[i, y : y + crop, x : x + crop]
        ms[i] = maps[i, oy[i] : oy[i] + k, ox[i] : ox[i] + k]
    return xs, ms


def pseudo_validation(good: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out good images and the same images with a fresh pseudo-defect each: (images,
    defective) for an AUROC that says whether the model tells a flaw from a good part."""
    from pi_inspect.train.anomaly.model import map_size
    from pi_inspect.train.anomaly.pseudo import make_batch

    h, w = good.shape[1:3]
    flawed, maps = make_batch(good.copy(), np.random.default_rng(seed + 7919), map_size((w, h)), 1.0)
    changed = maps.reshape(len(maps), -1).max(axis=1) > 0.1
    images = np.concatenate([good, flawed[changed]])
    return images, np.concatenate([np.zeros(len(good), bool), np.ones(int(changed.sum()), bool)])


class _Best:
    """The best validation AUROC so far and the weights that made it."""

    def __init__(self, model, val: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.model, self.val = model, val
        self.auroc, self.weights, self.since = float("nan"), None, 0
        self.history: list[float] = []

    def measure(self) -> bool:
        """Measure now; False once it has not improved for ``PATIENCE`` measurements."""
        from pi_inspect.train.metrics import auroc

        if self.val is None:
            return True
        images, bad = self.val
        value = float(auroc(bad, predict_scores(self.model, images)[0]))
        self.history.append(round(value, 4))
        if not value <= self.auroc:  # better (or the first)
            self.auroc, self.weights, self.since = value, self.model.get_weights(), 0
        else:
            self.since += 1
        return self.since < PATIENCE

    def restore(self) -> None:
        if self.weights is not None:
            self.model.set_weights(self.weights)


def _copy_weights(source, target) -> None:
    if source is not target:
        for layer in source.layers:
            if layer.weights:
                target.get_layer(layer.name).set_weights(layer.get_weights())


def _fit(
    model, images: np.ndarray, cfg: AnomalyConfig, val: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[list[float], _Best]:
    """Train epoch by epoch, each with freshly flipped images and fresh pseudo-defects.

    Training runs on ``cfg.crop`` px crops (2.25x fewer pixels than 96 px per step, the same
    weights: the model is convolutional up to its map) through a twin model of the crop size
    whose score is the map's peak; the trained weights are then copied into ``model``. The
    map's loss is focal: most cells are clean, and plain cross-entropy settles on their base
    rate before it learns the flaws.
    """
    import keras
    import tensorflow as tf

    from pi_inspect.train.anomaly.model import MAP, SCORE, build_anomaly_model, map_size
    from pi_inspect.train.anomaly.pseudo import PseudoConfig, make_batch, vary_contrast

    rng = np.random.default_rng(cfg.seed)
    size = cfg.input_size
    crop = cfg.crop if cfg.crop and cfg.crop < min(size) else 0
    # the twin that trains puts its score loss on the map's peak, a one-cell flaw's score too
    twin = build_anomaly_model((crop, crop) if crop else size, peak=True)
    if cfg.init or not crop:
        _copy_weights(model, twin)  # the model's starting weights, into the one that trains
    steps = max(1, len(images) // cfg.batch_size)
    epochs = cfg.epochs_for(steps)
    every = max(1, -(-EVAL_STEPS // steps))  # epochs between two validation measurements
    log.info("anomaly: %d epochs of %d steps, validated every %d epochs", epochs, steps, every)
    rate = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=epochs * steps, alpha=0.02
    )
    twin.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss={MAP: keras.losses.BinaryFocalCrossentropy(gamma=2.0), SCORE: keras.losses.BinaryCrossentropy()},
        loss_weights={MAP: 10.0, SCORE: 1.0},
    )
    pseudo = PseudoConfig(kinds=tuple(cfg.kinds))
    grid = map_size(size)
    verbose = cfg.verbose if cfg.verbose is not None else (1 if sys.stderr.isatty() else 2)
    losses = []
    best = _Best(model, val)
    for epoch in range(epochs):
        x = images.copy()
        for axis in (1, 2):  # horizontal and vertical flips: a seam runs either way
            flip = rng.random(len(x)) < 0.5
            x[flip] = np.flip(x[flip], axis=axis)
        x = vary_contrast(x, rng)
        x, maps = make_batch(x, rng, grid, cfg.pseudo_defects, pseudo)
        if crop:
            x, maps = crop_batch(x, maps, crop, rng)
        flawed = (maps.reshape(len(maps), -1).max(axis=1) > 0.1).astype(np.float32)[:, None]
        data = (
            tf.data.Dataset.from_tensor_slices((x, {MAP: maps, SCORE: flawed}))
            .shuffle(len(x), seed=cfg.seed + epoch)
            .batch(cfg.batch_size)
            .map(lambda a, b: (tf.cast(a, tf.float32), b))
            .prefetch(2)
        )
        started = time.monotonic()
        hist = twin.fit(data, epochs=1, verbose=0, shuffle=False)
        losses.append(float(hist.history["loss"][-1]))
        if verbose:
            log.info(
                "epoch %d/%d: loss %.4f (map %.4f, score %.4f), %.0f s",
                epoch + 1,
                epochs,
                losses[-1],
                float(hist.history[f"{MAP}_loss"][-1]),
                float(hist.history[f"{SCORE}_loss"][-1]),
                time.monotonic() - started,
            )
        if (epoch + 1) % every == 0 or epoch + 1 == epochs:
            _copy_weights(twin, model)
            going = best.measure()
            if best.history:
                log.info("validation: held-out pseudo-defect AUROC %.4f", best.history[-1])
            if not going:
                log.info("no better for %d measurements: stopping after epoch %d", PATIENCE, epoch + 1)
                break
    _copy_weights(twin, model)
    best.restore()
    return losses, best


def predict_scores(model, images: np.ndarray, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n,), maps (n, mh, mw)) of the Keras anomaly model."""
    from pi_inspect.train.anomaly.model import MAP, SCORE

    out = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(out[SCORE])[:, 0], np.asarray(out[MAP])


def train_anomaly(cfg: AnomalyConfig) -> Path:
    """Train per ``cfg``; returns the run directory (model.keras, run.json, thresholds.json)."""
    import keras
    import tensorflow as tf

    from pi_inspect.edge.data.images import load_images
    from pi_inspect.train.anomaly.model import build_anomaly_model, map_size

    cfg.validate()
    run_dir = Path(cfg.out).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train_paths, held_paths = split_good(good_paths(cfg.data), cfg.holdout, cfg.seed)
    write_good_split(run_dir / TRAIN_SPLIT, train_paths)
    write_good_split(run_dir / HOLDOUT_SPLIT, held_paths)
    workers = cfg.workers or 4
    train_x, ok = load_images(train_paths, cfg.input_size, workers)
    train_x = train_x[ok]
    held_x, ok_h = load_images(held_paths, cfg.input_size, workers)
    held_x = held_x[ok_h]
    log.info("anomaly: %d good images to train on, %d held out", len(train_x), len(held_x))
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    model = build_anomaly_model(cfg.input_size)
    init = None
    if cfg.init:
        from pi_inspect.train.warm import warm_start

        init = warm_start(model, cfg.init, [LABEL], "anomaly")
    losses, best = _fit(model, train_x, cfg, pseudo_validation(held_x, cfg.seed))
    model.save(run_dir / runs.MODEL_FILE)
    scores, _ = predict_scores(model, held_x)
    threshold = calibrate(scores, cfg.false_alarms)
    runs.write_json(run_dir / runs.THRESHOLDS_FILE, {LABEL: round(threshold, 6)})
    config = asdict(cfg)
    config["kinds"] = list(cfg.kinds)
    info = {
        "arch": "cnn",
        "task": "anomaly",
        "labels": [LABEL],
        "input_size": list(cfg.input_size),
        "map_size": list(map_size(cfg.input_size)),
        "meanings": {LABEL: dict(MEANING)},
        "alarms": {LABEL: "above"},
        "data": {
            "path": str(Path(cfg.data).absolute()),
            "sha256": runs.data_hash(train_paths + held_paths, [[1.0]] * (len(train_paths) + len(held_paths))),
            "count": len(train_paths) + len(held_paths),
        },
        "splits": {"train": str(run_dir / TRAIN_SPLIT), "holdout": str(run_dir / HOLDOUT_SPLIT)},
        "anomaly": {
            "false_alarm_target": cfg.false_alarms,
            "calibrated_on": int(len(held_x)),
            "threshold": round(threshold, 6),
        },
        "losses": [round(v, 5) for v in losses],
        "validation": {
            "pseudo_defect_auroc": round(best.auroc, 4),
            "history": best.history,
            "learned": bool(best.auroc >= MIN_AUROC),
        },
        **({"init": init} if init else {}),
        "config": config,
        "seed": cfg.seed,
        "versions": runs.versions(),
        "train_seconds": round(time.monotonic() - started, 1),
    }
    if cfg.view is not None:
        info["view"] = cfg.view
    runs.write_json(run_dir / runs.RUN_FILE, info)
    log.info(
        "anomaly run written to %s (threshold %.4f, held-out pseudo-defect AUROC %.4f)",
        run_dir, threshold, best.auroc,
    )  # fmt: skip
    if not best.auroc >= MIN_AUROC:
        raise DidNotLearn(
            f"did not learn: held-out good images against the same with pseudo-defects, AUROC "
            f"{best.auroc:.2f} (chance 0.50, needed {MIN_AUROC}); the run is in {run_dir} for "
            "inspection, and convert refuses it"
        )
    return run_dir
