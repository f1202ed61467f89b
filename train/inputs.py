"""What the workstation commands accept as images: a labelled data set or plain image files."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.data.table import IMAGE_SUFFIXES, TABLE_NAME, Dataset, read_dataset, read_table
from pi_inspect.edge.errors import DataError

BOXES_NAME = "boxes.csv"


@dataclass
class ImageSet:
    """Image paths, with their labels when the input was a data set (else ``dataset`` is None)."""

    paths: list[Path]
    dataset: Dataset | None
    root: Path


def read_labelled(path: str | os.PathLike, task: str) -> Dataset:
    """A data set as ``read_dataset`` reads it, but a CSV is read with the run's ``task``."""
    target = Path(path)
    if target.is_file() and target.suffix.lower() == ".csv":
        return read_table(target, task=task)
    return read_dataset(target)


def read_image_set(path: str | os.PathLike, task: str = "multilabel") -> ImageSet:
    """A lookup table / folder with labels.csv / class folders, or an image file / flat folder."""
    target = Path(path).absolute()
    if target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSet([target], None, target.parent)
    if target.is_file() or (target / TABLE_NAME).is_file():
        ds = read_labelled(target, task)
        return ImageSet(list(ds.paths), ds, target if target.is_dir() else target.parent)
    if target.is_dir():
        flat = sorted(
            p for p in target.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if flat:
            return ImageSet(flat, None, target)
        ds = read_dataset(target)
        return ImageSet(list(ds.paths), ds, target)
    raise DataError(f"{target}: no such file or folder")


def read_boxes(
    csv_path: str | os.PathLike,
) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """boxes.csv (``name,label,x0,y0,x1,y1``, names relative to its folder) -> {(abs path, label): boxes}."""
    path = Path(csv_path)
    base = path.absolute().parent
    boxes: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"name", "label", "x0", "y0", "x1", "y1"}
        if not need <= set(reader.fieldnames or ()):
            raise DataError(f"{path}: expected columns {sorted(need)}")
        for row in reader:
            name = os.path.normpath(base / row["name"])
            try:
                box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
            except ValueError as exc:
                raise DataError(f"{path}: bad box for {row['name']}") from exc
            boxes[(name, row["label"])].append(box)  # type: ignore[arg-type]
    return dict(boxes)


def find_boxes(image_set: ImageSet, explicit: str | None) -> Path | None:
    """--boxes, else boxes.csv beside the data set (as ``pi-inspect synth`` writes it)."""
    if explicit:
        return Path(explicit)
    candidate = image_set.root / BOXES_NAME
    return candidate if candidate.is_file() else None
