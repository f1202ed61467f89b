"""Train/valid/test split that keeps every group (source video) whole, or cuts it in time.

The seed shuffles single frames into train/valid/test, so near-identical neighbouring frames of
one video land on both sides and the test score measures memory, not generalisation. Here a
group goes to exactly one split; groups are assigned greedily (largest first) to the split that
most lacks images and positives of the group's labels, so fractions and label balance are hit
as closely as whole groups allow. ``by="time"`` instead cuts each recording into time blocks with
a gap at every cut (``blocks.py``): what one recording needs to give a validation set at all.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from pi_inspect.edge.data.blocks import BLOCKS, time_split
from pi_inspect.edge.data.table import Dataset, write_table
from pi_inspect.edge.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
MODES = ("group", "time")


def _fractions(valid: float, test: float) -> np.ndarray:
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise DataError(f"bad split fractions valid={valid} test={test}: need 0 <= each, sum < 1")
    return np.array([1.0 - valid - test, valid, test])


def _group_table(ds: Dataset) -> tuple[list[np.ndarray], np.ndarray]:
    """Member indices per group (first-seen order) and positives per group and label."""
    members: dict[str, list[int]] = {}
    for i, source in enumerate(ds.sources):
        members.setdefault(source, []).append(i)
    groups = [np.array(idx, dtype=np.int64) for idx in members.values()]
    positives = np.stack([(ds.y[idx] > 0.5).sum(axis=0) for idx in groups]).astype(np.float64)
    return groups, positives


def _assign(sizes: np.ndarray, positives: np.ndarray, fractions: np.ndarray, rng) -> np.ndarray:
    """Split number per group: greedy by deficit of images and of the group's labels."""
    n_groups = len(sizes)
    open_splits = np.flatnonzero(fractions > 0)
    target_n = fractions * sizes.sum()
    target_pos = fractions[:, None] * positives.sum(axis=0)[None, :]
    count = np.zeros(3)
    pos = np.zeros_like(target_pos)
    split_of = np.full(n_groups, -1, dtype=np.int64)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties shuffled
    for rank, g in enumerate(order):
        empty = [s for s in open_splits if count[s] == 0]
        remaining = n_groups - rank
        # too few groups left: give every requested split at least one
        choices = np.array(empty) if empty and remaining <= len(empty) else open_splits
        has = positives[g] > 0
        need = (target_n - count) / max(target_n.max(), 1.0)
        if has.any():
            label_need = (target_pos[:, has] - pos[:, has]) / np.maximum(target_pos[:, has], 1.0)
            need = need + label_need.mean(axis=1)
        best = choices[np.argmax(need[choices])]
        split_of[g] = best
        count[best] += sizes[g]
        pos[best] += positives[g]
    return _spread_labels(split_of, positives, open_splits)


def _spread_labels(split_of: np.ndarray, positives: np.ndarray, open_splits) -> np.ndarray:
    """Move a group so each split sees each label, when a donor split has it in 2+ groups."""
    split_of = split_of.copy()
    for label in range(positives.shape[1]):
        for s in open_splits:
            holders = positives[:, label] > 0
            if (holders & (split_of == s)).any():
                continue
            donors = [d for d in open_splits if (holders & (split_of == d)).sum() >= 2]
            for d in sorted(donors, key=lambda d: -(holders & (split_of == d)).sum()):
                in_d = np.flatnonzero(split_of == d)
                had = positives[in_d].sum(axis=0) > 0
                candidates = sorted(
                    (g for g in in_d if holders[g]), key=lambda g: positives[g].sum()
                )
                for g in candidates:
                    rest = positives[in_d[in_d != g]].sum(axis=0) > 0
                    if np.array_equal(rest, had):  # donor keeps every label it had
                        split_of[g] = s
                        break
                else:
                    continue
                break
    return split_of


def split_dataset(
    ds: Dataset,
    valid: float = 0.2,
    test: float = 0.1,
    seed: int = 0,
    by: str = "group",
    gap: int | None = None,
    blocks: int = BLOCKS,
) -> dict[str, np.ndarray]:
    """Sorted row indices per split (``train``, ``valid``, ``test``).

    ``by="group"`` never cuts a group. ``by="time"`` cuts each recording into time blocks
    (``blocks`` per held-out split at most, ``gap`` frames clear at each cut, default a few
    labelled-frame steps); the frames within a gap are in no split.
    """
    fractions = _fractions(valid, test)
    if by not in MODES:
        raise DataError(f"unknown split mode {by!r} (one of: {', '.join(MODES)})")
    if len(ds) == 0:
        raise DataError("cannot split an empty data set")
    if by == "time":
        split_of = time_split(ds, fractions, seed, gap=gap, blocks=blocks)
        return {name: np.flatnonzero(split_of == s) for s, name in enumerate(SPLITS)}
    groups, positives = _group_table(ds)
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    split_of = _assign(sizes, positives, fractions, np.random.default_rng(seed))
    out = {}
    for s, name in enumerate(SPLITS):
        chosen = [groups[g] for g in np.flatnonzero(split_of == s)]
        out[name] = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return out


def _relative(path: Path, folder: Path) -> str:
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return str(path)


def _warn_unseen(ds: Dataset, name: str, rows: np.ndarray) -> None:
    """One warning when a held-out split has no positive of a label the data set has."""
    overall = (ds.y > 0.5).sum(axis=0)
    inside = (ds.y[rows] > 0.5).sum(axis=0)
    unseen = [
        f"{label} ({int(n)} in all)"
        for label, n, k in zip(ds.labels, overall, inside, strict=True)
        if n and not k
    ]
    if unseen:
        log.warning("%s: no positive of %s; its scores go unchecked there", name, ", ".join(unseen))


def write_split(
    ds: Dataset,
    out_dir: str | os.PathLike,
    valid: float = 0.2,
    test: float = 0.1,
    seed: int = 0,
    by: str = "group",
    gap: int | None = None,
    blocks: int = BLOCKS,
) -> dict[str, Path]:
    """Write ``train.csv``, ``valid.csv``, ``test.csv`` (seed format + ``source``) to out_dir.

    Only non-empty splits are written and returned (``test=0`` gives no test.csv); ``by``,
    ``gap`` and ``blocks`` are ``split_dataset``'s. Names are relative to ``out_dir`` so the
    tables read back with ``read_table``. A class-folder data set is written one-hot; read it
    back with ``read_table(path, task="multiclass")``.
    """
    folder = Path(out_dir).absolute()
    indices = split_dataset(ds, valid=valid, test=test, seed=seed, by=by, gap=gap, blocks=blocks)
    written = {}
    for name in SPLITS:
        part = ds.subset(indices[name])
        path = folder / f"{name}.csv"
        if len(part) == 0:
            # an empty table would not read back; drop a stale one from an earlier split
            requested = {"train": True, "valid": valid > 0, "test": test > 0}[name]
            if requested:
                why = "groups for this split; --by time cuts recordings"
                if by == "time":
                    why = "frames for this split"
                log.warning("%s: no images (too few %s)", name, why)
            path.unlink(missing_ok=True)
            continue
        if name != "train":
            _warn_unseen(ds, name, indices[name])
        names = [_relative(p, folder) for p in part.paths]
        write_table(path, names, ds.labels, part.y, part.sources)
        written[name] = path
        log.info(
            "%s: %d images from %d groups -> %s",
            name,
            len(part),
            len(set(part.sources)),
            path,
        )
    return written
