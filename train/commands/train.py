"""``pi-inspect train``: train a classifier from a lookup table or class folders into RUN_DIR,
or (``--task anomaly``) an anomaly model from good images only."""

from __future__ import annotations

import argparse
from pathlib import Path

from pi_inspect.train.augment_config import NAMES as AUGMENTATIONS

DEFAULT_AUGMENT = "brightness,shift"  # AugmentConfig's defaults: true of any part


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        help="lookup table CSV (multi-label), a folder with labels.csv, or class folders "
        "(multi-class); for --task anomaly also a folder of good images",
    )
    parser.add_argument(
        "--task",
        default="classify",
        choices=["classify", "anomaly"],
        help="classify: learn the labels; anomaly: learn the good images only and flag "
        "anything unlike them",
    )
    parser.add_argument(
        "--false-alarms",
        type=float,
        default=0.005,
        help="--task anomaly: share of held-out good images allowed over the threshold",
    )
    parser.add_argument(
        "--valid",
        help="explicit validation set (else --data is split 85/15 by source group; data from "
        "one recording is cut in time blocks)",
    )
    parser.add_argument(
        "--arch",
        default="cnn",
        choices=["cnn", "resnet", "mobilenetv2", "efficientnetb0", "resnet50"],
        help="architecture: a small CNN, a residual net, or a pretrained backbone",
    )
    parser.add_argument(
        "--size", type=int, default=96, help="square input size in pixels"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="most epochs to train (default: 30; anomaly: as many as 800 steps need, at least 24)"
    )
    parser.add_argument(
        "--out", required=True, metavar="RUN_DIR", help="run folder for the model, run.json, curves"
    )
    parser.add_argument(
        "--weights", default="none", help="none | imagenet (from ~/.keras/models) | a weights FILE"
    )
    parser.add_argument("--alpha", type=float, default=0.35, help="mobilenetv2 width multiplier")
    parser.add_argument(
        "--head-hidden", default="", help="hidden Dense layers before the logits, e.g. 64,32"
    )
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout before the head")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per training step (default: 32; anomaly 64)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        dest="learning_rate",
        help="initial learning rate (default: 0.001; anomaly 0.002)",
    )
    parser.add_argument(
        "--schedule",
        default="plateau",
        choices=["plateau", "cosine"],
        help="learning rate: halve on a validation-loss plateau, or cosine decay over the epochs",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=10,
        help="second phase for pretrained transfer archs",
    )
    parser.add_argument("--patience", type=int, default=6, help="early stopping patience (epochs)")
    parser.add_argument(
        "--weighting",
        default="balanced",
        choices=["balanced", "none"],
        help="label/class weighting for imbalance",
    )
    parser.add_argument(
        "--augment",
        default=DEFAULT_AUGMENT,
        help=f"comma list of {', '.join(AUGMENTATIONS)} or 'none'",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for splits, weights, shuffling")
    parser.add_argument(
        "--station-config",
        type=Path,
        default=None,
        help="the station's config: record its region/rotation (the frames were cut with it)",
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="RUN",
        help="start from an earlier run's weights (retraining on its data plus new samples); "
        "labels it did not have start fresh",
    )
    parser.add_argument("--workers", type=int, default=None, help="image decode threads")
    parser.add_argument(
        "--no-determinism", action="store_true", help="skip TF op determinism (faster on some ops)"
    )


def run(args: argparse.Namespace) -> int:
    if args.task == "anomaly":
        return _run_anomaly(args)
    from pi_inspect.edge.view import station_view
    from pi_inspect.train.augment_config import AugmentConfig
    from pi_inspect.train.fit import TrainConfig, train
    from pi_inspect.train.models import parse_hidden

    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        size=args.size,
        epochs=args.epochs if args.epochs is not None else 30,
        valid=args.valid,
        weights=args.weights,
        alpha=args.alpha,
        head_hidden=parse_hidden(args.head_hidden),
        dropout=args.dropout,
        batch_size=args.batch_size if args.batch_size is not None else 32,
        learning_rate=args.learning_rate if args.learning_rate is not None else 1e-3,
        schedule=args.schedule,
        fine_tune_epochs=args.fine_tune_epochs,
        patience=args.patience,
        weighting=args.weighting,
        augment=AugmentConfig.from_names(args.augment),
        seed=args.seed,
        workers=args.workers,
        deterministic=not args.no_determinism,
        view=station_view(args.station_config).to_dict() if args.station_config else None,
        init=args.init,
    )
    run_dir = train(cfg)
    print(run_dir)
    return 0


# Options that only a classifier uses; an anomaly run says so rather than ignoring them.
_CLASSIFIER_ONLY = {
    "valid": None,
    "arch": "cnn",
    "weights": "none",
    "head_hidden": "",
    "schedule": "plateau",
    "weighting": "balanced",
    "augment": DEFAULT_AUGMENT,
}


def _run_anomaly(args: argparse.Namespace) -> int:
    import logging

    from pi_inspect.edge.view import station_view
    from pi_inspect.train.anomaly.fit import AnomalyConfig, train_anomaly

    ignored = [
        "--" + key.replace("_", "-")
        for key, default in _CLASSIFIER_ONLY.items()
        if getattr(args, key) != default
    ]
    if ignored:
        logging.getLogger("pi-inspect.train").warning(
            "--task anomaly ignores %s (classifier options)", ", ".join(ignored)
        )
    given = {
        key: getattr(args, key)
        for key in ("epochs", "batch_size", "learning_rate")
        if getattr(args, key) is not None
    }
    cfg = AnomalyConfig(
        data=args.data,
        out=args.out,
        size=args.size,
        **given,
        false_alarms=args.false_alarms,
        seed=args.seed,
        workers=args.workers,
        deterministic=not args.no_determinism,
        view=station_view(args.station_config).to_dict() if args.station_config else None,
        init=args.init,
    )
    print(train_anomaly(cfg))
    return 0
