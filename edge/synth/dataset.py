"""Write a synthetic data set: ``images/NNNNNN.png``, ``labels.csv``, ``boxes.csv`` and
``dataset.toml`` (what each label means and when it alarms).

``labels.csv`` is seed 001's lookup table (``name,good,error,break,length`` with ``True``/
``False``; ``name`` relative to the data set folder). ``boxes.csv`` holds one row
``name,label,x0,y0,x1,y1`` (inclusive pixel coordinates in the image) per error and break.
Images are rendered by a pool of worker processes in chunks; each image has its own seed, so
the output is byte-identical whatever the worker count.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.errors import DataError
from pi_inspect.edge.synth.still import LABELS, Box, is_good, render_still

IMAGES_DIR = "images"
LABELS_CSV = "labels.csv"
BOXES_CSV = "boxes.csv"
BOX_COLUMNS = ("name", "label", "x0", "y0", "x1", "y1")
GOOD_SCAN_FACTOR = 64  # good-only scans at most this many stills per good one asked for


@dataclass(frozen=True)
class Row:
    name: str  # relative to the data set folder
    labels: dict[str, bool]
    boxes: tuple[Box, ...]


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    rows: tuple[Row, ...]

    def frequency(self, label: str) -> float:
        return sum(r.labels[label] for r in self.rows) / max(1, len(self.rows))


def image_name(index: int) -> str:
    return f"{IMAGES_DIR}/{index:06d}.png"


def _render_chunk(job: tuple[str, int, tuple[int, int], list[int]]) -> list[Row]:
    import cv2

    root, seed, size, indices = job
    rows = []
    for i in indices:
        sample = render_still(seed, i, size)
        name = image_name(i)
        if not cv2.imwrite(os.path.join(root, name), sample.image):
            raise OSError(f"cannot write {os.path.join(root, name)}")
        rows.append(Row(name, sample.labels, tuple(sample.boxes)))
    return rows


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV threads would oversubscribe


# What the synthetic seams' labels mean (written beside labels.csv as dataset.toml).
MEANINGS = {
    "good": ("never", "no defect: intact 2 mm stitches"),
    "error": ("present", "a widened or looped stitch"),
    "break": ("present", "the thread is cut"),
    "length": ("absent", "stitch pitch is 2 mm (absent: the wrong 4 mm pitch)"),
}


def write_meanings(root: Path) -> Path:
    """The data set's ``dataset.toml``: when each label alarms and what it means."""
    from pi_inspect.edge.data.meanings import LabelMeaning, write_declaration

    return write_declaration(
        root, {label: LabelMeaning(*MEANINGS[label]) for label in LABELS}
    )


def write_labels(path: Path, rows: list[Row] | tuple[Row, ...]) -> None:
    """The seed's lookup table, written by the data package's own writer (atomic)."""
    from pi_inspect.edge.data.table import write_table

    write_table(path, [r.name for r in rows], LABELS, [[r.labels[k] for k in LABELS] for r in rows])


def write_boxes(path: Path, rows: list[Row] | tuple[Row, ...]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(BOX_COLUMNS)
        for r in rows:
            for b in r.boxes:
                writer.writerow([r.name, b.label, b.x0, b.y0, b.x1, b.y1])


def good_indices(seed: int, count: int) -> list[int]:
    """The indices of the first ``count`` good stills of ``seed``, decided without rendering.

    The full set's indices are scanned in order until ``count`` good ones are found, so the
    answer depends on the seed alone and a larger count only adds to a smaller one's stills.
    """
    limit = GOOD_SCAN_FACTOR * (count + 1)  # a guard only: about 1 still in 4 is good
    found: list[int] = []
    for i in range(limit):
        if len(found) == count:
            break
        if is_good(seed, i):
            found.append(i)
    if len(found) < count:
        raise DataError(f"only {len(found)} of the first {limit} stills of seed {seed} are good")
    return found


def generate_dataset(
    out: str | os.PathLike,
    count: int,
    seed: int,
    size: tuple[int, int] = (128, 128),
    workers: int | None = None,
    chunk: int = 32,
    good_only: bool = False,
) -> DatasetSummary:
    """Render ``count`` stills into ``out`` and write both CSV files; returns what was written.

    ``good_only`` renders the first ``count`` good stills of the seed (about one still in four
    is good), under the names they have in the full set: training data for a model that learns
    from good parts only, never overlapping a full set of another seed.
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    root = Path(out)
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    indices = good_indices(seed, count) if good_only else list(range(count))
    jobs = [
        (str(root), seed, size, indices[s : s + chunk]) for s in range(0, len(indices), chunk)
    ]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        _init_worker()
        parts = [_render_chunk(j) for j in jobs]
    else:
        import multiprocessing as mp

        # never fork: the caller may hold threads (TensorFlow, OpenCV) whose locks a forked
        # child would inherit; a fresh forkserver/spawn child imports only what it needs
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            parts = pool.map(_render_chunk, jobs, chunksize=1)
    rows = tuple(r for part in parts for r in part)
    write_labels(root / LABELS_CSV, rows)
    write_boxes(root / BOXES_CSV, rows)
    write_meanings(root)
    return DatasetSummary(root, rows)
