"""Time blocks: one recording's frames cut into train/valid/test with a gap at every cut.

One video is one group, and the group split never cuts a group, so a single recording cannot
give a validation set that way. Here each recording's frames, in frame-index order (read from the
``<video>_<index>.png`` names, not from a file-name sort), are cut into blocks. Each held-out
split (valid, test) takes up to ``blocks`` blocks spread evenly over the recording, one per
stretch of it at a seeded place inside the stretch, so lighting drift and the line's changes over
the recording show in valid and test as well as in train; train gets the rest. Consecutive
labelled frames are near-duplicates, so every frame within ``gap`` frame indices of a frame of
another split is left out (train's frames first, then valid's, test's never), so that no two
frames on different sides of a cut are ``gap`` or fewer frames apart. Several placements are
tried; the one that shows each label in the most splits, then keeps valid and test whole, then
leaves out the fewest frames, wins.
"""

from __future__ import annotations

import logging

import numpy as np

from pi_inspect.edge.data.table import Dataset, frame_number
from pi_inspect.edge.errors import DataError

log = logging.getLogger(__name__)

GAP_STEPS = 3  # default gap: this many steps between labelled frames (frames --every 5: 15)
BLOCKS = 3  # held-out blocks per split and recording, at most
MIN_BLOCK = 2 * GAP_STEPS  # a smaller block holds fewer frames than its two cuts leave out
CANDIDATES = 16  # seeded block placements tried per recording


def frame_numbers(ds: Dataset) -> np.ndarray:
    """Frame index per image, from its name; a DataError names the first image without one."""
    found = [frame_number(p.name) for p in ds.paths]
    missing = [p for p, f in zip(ds.paths, found, strict=True) if f is None]
    if missing:
        raise DataError(
            f"{missing[0].name}: no frame index in the name (expected <video>_<index>.png), "
            "which a split in time blocks needs"
        )
    return np.array(found, dtype=np.int64)


def one_recording(ds: Dataset) -> bool:
    """Every image is a frame of the same recording: the case a split by time is for."""
    return (
        len(ds) > 0
        and len(set(ds.sources)) == 1
        and all(frame_number(p.name) is not None for p in ds.paths)
    )


def default_gap(frames: np.ndarray) -> int:
    """``GAP_STEPS`` times the usual step between labelled frames (their median distance)."""
    steps = np.diff(np.unique(frames))
    step = int(np.median(steps)) if steps.size else 1
    return GAP_STEPS * max(step, 1)


def recording_gaps(ds: Dataset, gap: int | None = None) -> dict[str, int]:
    """The gap in frames each recording (group) is cut with: ``gap``, or its default."""
    if gap is not None and gap < 0:
        raise DataError(f"gap {gap}: must be >= 0 frames")
    frames = frame_numbers(ds)
    sources = np.array(ds.sources, dtype=object)
    return {
        source: default_gap(frames[sources == source]) if gap is None else int(gap)
        for source in dict.fromkeys(ds.sources)
    }


def time_split(
    ds: Dataset, fractions: np.ndarray, seed: int, gap: int | None = None, blocks: int = BLOCKS
) -> np.ndarray:
    """Split number per image (0 train, 1 valid, 2 test), -1 for a frame left out at a cut.

    ``fractions`` are (train, valid, test) and sum to 1; valid and test get their share of each
    recording, the frames left out at cuts come out of train.
    """
    if blocks < 1:
        raise DataError(f"blocks {blocks}: must be >= 1")
    gaps = recording_gaps(ds, gap)
    frames = frame_numbers(ds)
    sources = np.array(ds.sources, dtype=object)
    positives = ds.y > 0.5
    rng = np.random.default_rng(seed)
    split_of = np.full(len(ds), -1, dtype=np.int64)
    for source, source_gap in gaps.items():
        rows = np.flatnonzero(sources == source)
        rows = rows[np.lexsort((rows, frames[rows]))]  # time order; equal indices by row
        split_of[rows] = _cut(frames[rows], positives[rows], fractions, source_gap, blocks, rng)
        log.debug("%s: %d frames cut with a gap of %d frames", source, len(rows), source_gap)
    return split_of


def _plan(sizes: np.ndarray, blocks: int) -> list[tuple[int, int]]:
    """(split, frames) of each held-out block in recording order, each split spread evenly."""
    placed = []
    for split in (1, 2):
        if sizes[split] == 0:
            continue
        k = max(1, min(blocks, int(sizes[split]) // MIN_BLOCK))
        for j, part in enumerate(np.array_split(np.arange(sizes[split]), k)):
            placed.append(((j + 0.5) / k, split, len(part)))
    return [(split, size) for _, split, size in sorted(placed)]


def _cut(
    frames: np.ndarray,
    positives: np.ndarray,
    fractions: np.ndarray,
    gap: int,
    blocks: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Split number per frame of one recording (frames in time order)."""
    n = len(frames)
    sizes = np.floor(fractions * n + 0.5).astype(np.int64)
    sizes[0] = n - sizes[1] - sizes[2]
    plan = _plan(sizes, blocks)
    if not plan:
        return np.zeros(n, dtype=np.int64)
    train_per_stretch = [len(p) for p in np.array_split(np.arange(sizes[0]), len(plan))]
    best, best_score = None, None
    for _ in range(CANDIDATES):
        layout: list[int] = []
        for (split, size), train in zip(plan, train_per_stretch, strict=True):
            before = int(rng.integers(0, train + 1))
            layout += [0] * before + [split] * size + [0] * (train - before)
        planned = np.array(layout, dtype=np.int64)
        split_of = _leave_out(frames, planned, gap)
        shown = sum(int(positives[split_of == s].any(axis=0).sum()) for s in range(3))
        held_out_lost = int(((planned > 0) & (split_of < 0)).sum())
        score = (shown, -held_out_lost, -int((split_of < 0).sum()))
        if best_score is None or score > best_score:
            best, best_score = split_of, score
    return best


def _leave_out(frames: np.ndarray, split_of: np.ndarray, gap: int) -> np.ndarray:
    """Mark -1 each frame within ``gap`` of a frame of a later split (train < valid < test)."""
    out = split_of.copy()
    for low in (0, 1):
        mine = np.flatnonzero(split_of == low)
        later = np.sort(frames[split_of > low])
        if not mine.size or not later.size:
            continue
        at = np.searchsorted(later, frames[mine])
        before = later[np.clip(at - 1, 0, len(later) - 1)]
        after = later[np.clip(at, 0, len(later) - 1)]
        near = (np.abs(frames[mine] - before) <= gap) | (np.abs(after - frames[mine]) <= gap)
        out[mine[near]] = -1
    return out
