"""Convert an anomaly run: full-int8 model, threshold recalibrated on int8 scores, verified.

The same steps as for a classifier (fold, equalise, int8 with uint8 input, no float op, a
float32 reference, golden set), with three differences:

- calibration images are the run's good images, half of them with a pseudo-defect, so the int8
  ranges of every layer also cover what a flaw does to the activations (calibrated on good
  images only, a real defect's activations clip and its score comes out too low);
- the threshold is set again on the int8 model's scores of the held-out good images, for the
  run's false-alarm target: the Pi decides with int8 scores, so they must meet the target;
- the global score (``pi_inspect.edge.global_score``: "not one of the good parts") gets its
  memory from the good training images and its mapping from the held-out ones; the threshold
  and the pseudo-defect gate are on the score the Pi computes, the map's (the mean of its
  highest cells) or the global score, whichever is higher;
- parity is measured on what matters: Pearson correlation of float and int8 scores (at least
  ``MIN_CORRELATION``) and the drop in image AUROC (at most ``MAX_AUROC_DROP``), on a labelled
  ``--test`` set, or else on the held-out good images and the same images with pseudo-defects;
  there the int8 AUROC must reach ``MIN_PSEUDO_AUROC`` or the bundle is refused (a model
  that does not tell a flaw from a good part is never shipped).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.errors import ConversionError

log = logging.getLogger("pi-inspect.convert")

MIN_CORRELATION = 0.99
MAX_AUROC_DROP = 0.005
MIN_PSEUDO_AUROC = 0.9  # held-out good vs the same with pseudo-defects, int8: else not shipped
OUTPUTS = {"scores": "anomaly_score", "map": "anomaly_map"}
MEMORY_FILE = "global_memory.npy"


@dataclass
class AnomalyParity:
    count: int
    pearson: float
    auroc_float: float | None
    auroc_int8: float | None
    mean_abs_diff: float
    max_abs_diff: float
    map_pearson: float
    threshold_float: float
    threshold_int8: float
    auroc_shipped: float | None = None  # int8, with the global score: what the Pi decides on

    @property
    def auroc_drop(self) -> float | None:
        if self.auroc_float is None or self.auroc_int8 is None:
            return None
        return self.auroc_float - self.auroc_int8

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "auroc_drop": self.auroc_drop}

    def table(self) -> str:
        lines = [
            f"anomaly scores, float vs int8 on {self.count} images: Pearson {self.pearson:.4f} "
            f"(min {MIN_CORRELATION}), mean |diff| {self.mean_abs_diff:.4f}, "
            f"max {self.max_abs_diff:.4f}; maps Pearson {self.map_pearson:.3f}",
        ]
        if self.auroc_drop is not None:
            lines.append(
                f"image AUROC good vs defective: float {self.auroc_float:.4f}, int8 "
                f"{self.auroc_int8:.4f} (drop {self.auroc_drop:+.4f}, max {MAX_AUROC_DROP})"
            )
        if self.auroc_shipped is not None:
            lines.append(f"image AUROC with the global score (as the Pi decides): {self.auroc_shipped:.4f}")
        lines.append(
            f"threshold: {self.threshold_int8:.6g} on int8 scores "
            f"(float model: {self.threshold_float:.4f})"
        )
        return "\n".join(lines)


def check_anomaly_parity(report: AnomalyParity, allow_drop: bool) -> None:
    problems = []
    if not report.pearson >= MIN_CORRELATION:
        problems.append(f"score correlation {report.pearson:.4f} < {MIN_CORRELATION}")
    drop = report.auroc_drop
    if drop is not None and drop > MAX_AUROC_DROP:
        problems.append(f"AUROC drops by {drop:.4f} > {MAX_AUROC_DROP}")
    if problems and not allow_drop:
        raise ConversionError(
            f"the int8 anomaly model does not match the float one: {'; '.join(problems)}; not "
            "writing the bundle. Use more/other --calib images, --quant float16, or --allow-drop"
        )


def _good(path: Path, size: tuple[int, int], count: int, seed: int) -> np.ndarray:
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.train.anomaly.fit import good_paths

    paths = good_paths(path)
    if len(paths) > count:
        pick = np.random.default_rng(seed).choice(len(paths), size=count, replace=False)
        paths = [paths[i] for i in np.sort(pick)]
    images, ok = load_images(paths, size)
    if not ok.any():
        raise ConversionError(f"{path}: no readable good images")
    return images[ok]


def _labelled(path: Path, size: tuple[int, int], count: int, seed: int):
    """Images of a labelled test set and whether each is defective (any alarm condition)."""
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.train.anomaly.evaluate import defect_kinds

    kinds, paths = defect_kinds(path)
    idx = np.arange(len(paths))
    if len(idx) > count:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), size=count, replace=False))
    images, ok = load_images([paths[i] for i in idx], size)
    defective = np.zeros(len(paths), bool)
    for mask in kinds.values():
        defective |= mask
    return images[ok], defective[idx][ok]


def calibration_images(good: np.ndarray, seed: int) -> np.ndarray:
    """Good images, every other one with a pseudo-defect (see the module docstring)."""
    from pi_inspect.train.anomaly.model import map_size
    from pi_inspect.train.anomaly.pseudo import make_batch

    h, w = good.shape[1:3]
    images, _ = make_batch(good, np.random.default_rng(seed), map_size((w, h)), 0.5)
    return images


def fit_global(
    train_good: np.ndarray, held: np.ndarray, held_local: np.ndarray, seed: int
) -> tuple[Any, bytes]:
    """The global score (``pi_inspect.edge.global_score``): the good training images' descriptors
    as its memory (float16, as the bundle stores them), its distance mapped onto the map's
    score scale on the held-out good images. Returns (scorer, the memory file's bytes)."""
    import io

    from pi_inspect.edge.global_score import (
        SIDE,
        GlobalScore,
        K,
        descriptors,
        fit_mapping,
        knn_distance,
        pick_memory,
    )
    from pi_inspect.edge.manifest import GlobalSpec
    from pi_inspect.edge.manifest_anomaly import LOGIT

    memory = pick_memory(descriptors(train_good), seed).astype(np.float16)
    scale, offset = fit_mapping(knn_distance(descriptors(held), memory), held_local)
    spec = GlobalSpec(MEMORY_FILE, SIDE, K, float(scale), float(offset), LOGIT)
    buffer = io.BytesIO()
    np.save(buffer, memory, allow_pickle=False)
    log.info(
        "global score: %d good images in memory, distance x %.3f %+.3f onto the map's logits",
        len(memory), scale, offset,
    )
    return GlobalScore(spec, memory), buffer.getvalue()


def convert_anomaly_run(run_dir: Path, out_dir: Path, opts) -> Any:
    from pi_inspect.convert.bundle_writer import (
        good_reference,
        pick_golden,
        source_name,
        write_bundle,
        written_threshold,
    )
    from pi_inspect.convert.equalize import equalize_activations
    from pi_inspect.convert.fold import fold_pooled_batchnorm
    from pi_inspect.convert.quantize import convert_model
    from pi_inspect.convert.result import ConvertResult
    from pi_inspect.convert.verify import check_integer_only, list_ops, pearson
    from pi_inspect.edge.runtime import int8_scores
    from pi_inspect.train.anomaly.fit import (
        HOLDOUT_SPLIT,
        TRAIN_SPLIT,
        predict_scores,
        pseudo_validation,
    )
    from pi_inspect.train.anomaly.model import MAP, SCORE
    from pi_inspect.train.anomaly.threshold import calibrate
    from pi_inspect.train.metrics import auroc
    from pi_inspect.train.runs import load_run

    if opts.quant != "int8":
        raise ConversionError("an anomaly model converts to int8 only (--quant int8)")
    run = load_run(run_dir)
    info = run.info
    size = tuple(int(v) for v in info["input_size"])
    seed = int(info.get("seed", 0))
    target = float(info["anomaly"]["false_alarm_target"])
    calib_path = opts.calib or Path(run_dir) / TRAIN_SPLIT
    held = _good(Path(run_dir) / HOLDOUT_SPLIT, size, 100_000, seed)
    calib = calibration_images(_good(Path(calib_path), size, opts.calib_count, seed), seed)
    if opts.test is not None:
        test_x, test_bad = _labelled(Path(opts.test), size, opts.test_count, seed + 1)
    else:  # what matters: the held-out good images, and the same with pseudo-defects
        test_x, test_bad = pseudo_validation(held, seed)
    log.info(
        "calibrating on %d images (half with pseudo-defects); threshold on %d held-out good "
        "images; parity on %d images",
        len(calib),
        len(held),
        len(test_x),
    )
    model = fold_pooled_batchnorm(run.model)
    equalize_activations(model, calib)
    outputs = {SCORE: model.output[SCORE], MAP: model.output[MAP]}
    model_bytes = convert_model(model, "int8", calib, opts.io_type, False, outputs)
    ops = list_ops(model_bytes)
    check_integer_only(ops)
    float_bytes = convert_model(model, "float32", None, "uint8", False, outputs) if opts.reference else None
    float_held, _ = predict_scores(model, held)
    float_test, float_maps = predict_scores(model, test_x)
    common: dict[str, Any] = dict(
        name=opts.name or Path(run_dir).resolve().name,
        version=opts.version or dt.datetime.now(dt.timezone.utc).strftime("%Y.%m.%d-%H%M"),
        task="anomaly",
        labels=["anomaly"],
        alarms={"anomaly": "above"},
        meanings={"anomaly": dict(info["meanings"]["anomaly"])},
        input_size=size,
        input_dtype=opts.io_type,
        quantization="int8",
        head=None,
        source_run=source_name(Path(run_dir)),
        outputs=dict(OUTPUTS),
    )
    with tempfile.TemporaryDirectory(prefix="pi-inspect-bundle-") as tmp:
        probe = Path(tmp) / "bundle"
        write_bundle(
            probe, model_bytes=model_bytes, float_bytes=None, parity=None,
            thresholds={"anomaly": 0.5}, **common,
        )
        q_held, _ = int8_scores(probe, held)
        q_test, q_maps = int8_scores(probe, test_x)
    train_good = _good(Path(run_dir) / TRAIN_SPLIT, size, 100_000, seed)
    scorer, memory_bytes = fit_global(train_good, held, q_held, seed)
    shipped_held = np.maximum(q_held, [scorer.score(x) for x in held])
    shipped_test = np.maximum(q_test, [scorer.score(x) for x in test_x])
    threshold = calibrate(shipped_held, target)
    if written_threshold(threshold, "above") >= 1.0:  # even with every decimal the manifest keeps
        raise ConversionError(
            f"one of the {len(held)} held-out good images scores {float(shipped_held.max()):.8f}, "
            "as far from the other good images as no good part should: no threshold passes it "
            f"and still alarms; look in {Path(run_dir) / HOLDOUT_SPLIT} for an image that is not "
            "a good part, or add more good images like it"
        )
    map_r = [pearson(a, b) for a, b in zip(float_maps, q_maps, strict=True)]
    diff = np.abs(float_test - q_test)
    report = AnomalyParity(
        count=len(test_x),
        pearson=pearson(float_test, q_test),
        auroc_float=auroc(test_bad, float_test) if test_bad is not None else None,
        auroc_int8=auroc(test_bad, q_test) if test_bad is not None else None,
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        map_pearson=float(np.nanmean(map_r)) if np.isfinite(map_r).any() else float("nan"),
        threshold_float=calibrate(float_held, target),
        threshold_int8=threshold,
        auroc_shipped=auroc(test_bad, shipped_test) if test_bad is not None else None,
    )
    check_anomaly_parity(report, opts.allow_drop)
    if opts.test is None and not (report.auroc_shipped or 0.0) >= MIN_PSEUDO_AUROC:
        raise ConversionError(
            f"the int8 model tells held-out good images from the same with pseudo-defects at "
            f"AUROC {report.auroc_shipped:.3f} < {MIN_PSEUDO_AUROC}: it has not learned the good "
            "parts well enough to ship; train on more good images or longer"
        )
    anomaly = {
        "false_alarm_target": target,
        "calibrated_on": int(len(held)),
        "map_size": [int(q_maps.shape[2]), int(q_maps.shape[1])],
        "global": scorer.spec.to_dict(),
    }
    extra: dict[str, Any] = {"anomaly": anomaly}
    extra["reference"] = good_reference(["anomaly"], shipped_held[:, None], np.ones(len(held), bool))
    if info.get("view") is not None:
        extra["view"] = info["view"]
    manifest = write_bundle(
        out_dir,
        model_bytes=model_bytes,
        float_bytes=float_bytes,
        parity=report.to_dict(),
        force=opts.force,
        golden=test_x[pick_golden(q_test[:, None])],
        thresholds={"anomaly": threshold},
        extra=extra,
        aux_files={MEMORY_FILE: memory_bytes},
        **common,
    )
    return ConvertResult(manifest=manifest, bundle_dir=Path(out_dir), ops=ops, parity=report)
