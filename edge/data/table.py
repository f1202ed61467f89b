"""The seed's CSV lookup table (``name,good,error,break,length``) and Keras-style class folders.

One ``Dataset`` shape for both: absolute image paths, a float32 label matrix (multi-hot for the
multi-label seam task, one-hot for class folders) and a group id per image so the split can keep
near-duplicate frames of one video together.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pi_inspect.edge.errors import DataError
from pi_inspect.edge.files import follow_umask
from pi_inspect.edge.manifest import label_problem

SEED_LABELS = ("good", "error", "break", "length")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
TABLE_NAME = "labels.csv"  # a directory holding this file is read as a lookup table

Task = Literal["multilabel", "multiclass"]

_TRUE = frozenset({"true", "1", "yes", "y", "t", "1.0"})
_FALSE = frozenset({"false", "0", "no", "n", "f", "0.0"})
_RESERVED = frozenset({"name", "source"})
_FRAME_NAME = re.compile(r"(.+)_(\d+)")


@dataclass
class Dataset:
    """Images with their labels; row ``i`` of ``y`` belongs to ``paths[i]`` and ``sources[i]``."""

    paths: list[Path]  # absolute image paths
    y: np.ndarray  # float32 (n, k): multi-hot for multilabel, one-hot for multiclass
    labels: tuple[str, ...]  # label/class names, column order of y
    task: Task
    sources: list[str]  # group id per image (source video / recording); used by the split

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        """The rows ``idx`` (in that order) as a new Dataset sharing labels and task."""
        rows = np.asarray(idx, dtype=np.int64).reshape(-1)
        return Dataset(
            paths=[self.paths[i] for i in rows],
            y=self.y[rows].copy(),
            labels=self.labels,
            task=self.task,
            sources=[self.sources[i] for i in rows],
        )


def source_from_name(name: str) -> str:
    """Group id of an image: ``<video>_<frameindex>.png`` -> ``<video>`` (seed 001's frame
    naming); any other image is its own group (its name)."""
    match = _FRAME_NAME.fullmatch(Path(name).stem)
    return match.group(1) if match else name


def frame_number(name: str) -> int | None:
    """Frame index of an image named ``<video>_<frameindex>.png`` (padded or not), else None:
    the recording's time order, which a file-name sort gets wrong for unpadded numbers."""
    match = _FRAME_NAME.fullmatch(Path(name).stem)
    return int(match.group(2)) if match else None


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` (and true/1/yes/no/0 ...) case-insensitively; None if not a boolean."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


@dataclass
class TableRows:
    """A lookup table as written: names as in the file (not resolved), labels, values, sources."""

    labels: tuple[str, ...]
    names: list[str]
    values: list[list[bool]]
    sources: list[str | None]  # None where the table has no source for that row


def read_rows(csv_path: str | os.PathLike) -> TableRows:
    """Parse and validate a lookup table; raises DataError naming the file and line."""
    path = Path(csv_path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return _parse(csv.reader(fh), path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such lookup table") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _parse(reader, path: Path) -> TableRows:
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty file, expected a header like name,{','.join(SEED_LABELS)}")
    header = [h.strip() for h in header]
    skip_index = bool(header) and header[0] == ""  # pandas to_csv writes an unnamed index column
    columns = header[1:] if skip_index else header
    if "" in columns:
        raise DataError(f"{path}:1: empty column name in header")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise DataError(f"{path}:1: duplicate column {duplicated[0]!r}")
    if "name" not in columns:
        raise DataError(f"{path}:1: no 'name' column (header: {','.join(header)})")
    labels = tuple(c for c in columns if c not in _RESERVED)
    if not labels:
        raise DataError(f"{path}:1: no label columns besides name/source")
    _usable_labels(labels, f"{path}:1")
    offset = 1 if skip_index else 0
    name_col = columns.index("name") + offset
    source_col = columns.index("source") + offset if "source" in columns else None
    label_cols = [columns.index(label) + offset for label in labels]

    rows = TableRows(labels=labels, names=[], values=[], sources=[])
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise DataError(f"{path}:{line}: {len(record)} fields, header has {len(header)}")
        name = record[name_col].strip()
        if not name:
            raise DataError(f"{path}:{line}: empty name")
        if "\0" in name:
            raise DataError(f"{path}:{line}: NUL byte in name")
        if name in seen:
            raise DataError(f"{path}:{line}: duplicate name {name!r} (first on line {seen[name]})")
        seen[name] = line
        values = []
        for label, col in zip(labels, label_cols, strict=True):
            value = parse_bool(record[col])
            if value is None:
                raise DataError(f"{path}:{line}: {label}={record[col]!r} is not True/False")
            values.append(value)
        source = record[source_col].strip() if source_col is not None else ""
        rows.names.append(name)
        rows.values.append(values)
        rows.sources.append(source or None)
    return rows


def read_table(csv_path: str | os.PathLike, task: Task = "multilabel") -> Dataset:
    """Read a lookup table. Names are relative to the CSV's folder (absolute ones are kept).

    ``task="multiclass"`` reads a one-hot table (as ``write_split`` writes for class folders)
    and checks that every row has exactly one True.
    """
    path = Path(csv_path)
    rows = read_rows(path)
    if not rows.names:
        raise DataError(f"{path}: no rows")
    base = path.absolute().parent
    paths = [Path(os.path.normpath(base / name)) for name in rows.names]
    y = np.asarray(rows.values, dtype=np.float32).reshape(len(rows.names), len(rows.labels))
    if task == "multiclass":
        bad = np.flatnonzero(y.sum(axis=1) != 1)
        if bad.size:
            raise DataError(f"{path}: {rows.names[bad[0]]!r} has not exactly one class set")
    elif task != "multilabel":
        raise DataError(f"unknown task {task!r}")
    sources = [s or source_from_name(n) for n, s in zip(rows.names, rows.sources, strict=True)]
    return Dataset(paths=paths, y=y, labels=rows.labels, task=task, sources=sources)


def _format_bool(value: float | bool) -> str:
    return "True" if bool(value) else "False"


def write_table(
    csv_path: str | os.PathLike,
    names: Sequence[str],
    labels: Sequence[str],
    y: np.ndarray | Sequence[Sequence[float | bool]],
    sources: Sequence[str] | None = None,
) -> None:
    """Write a lookup table in the seed format (``source`` last when given), atomically.

    ``names`` are written as given: make them relative to the CSV's folder to keep the data set
    movable. The file is replaced in one step, so a reader never sees half a table.
    """
    path = Path(csv_path)
    labels = tuple(labels)
    matrix = np.asarray(y, dtype=np.float32).reshape(len(names), len(labels))
    bad = [label for label in labels if label in _RESERVED or not label or "," in label]
    if bad or len(set(labels)) != len(labels):
        raise DataError(f"{path}: invalid label names {list(labels)}")
    if sources is not None and len(sources) != len(names):
        raise DataError(f"{path}: {len(sources)} sources for {len(names)} names")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate names")
    header = ["name", *labels] + (["source"] if sources is not None else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    follow_umask(fd)  # mkstemp makes it 0600; the output is an ordinary file
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            for i, name in enumerate(names):
                row = [str(name), *(_format_bool(v) for v in matrix[i])]
                if sources is not None:
                    row.append(sources[i])
                writer.writerow(row)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def upsert_row(
    csv_path: str | os.PathLike,
    name: str,
    labels: Sequence[str],
    values: Sequence[bool],
    source: str | None = None,
) -> None:
    """Add one row to a lookup table, or replace the row with the same name (label tool save).

    The table is created if missing; an existing table must have the same label columns.
    """
    path = Path(csv_path)
    labels = tuple(labels)
    if len(values) != len(labels):
        raise DataError(f"{path}: {len(values)} values for {len(labels)} labels")
    if path.exists():
        rows = read_rows(path)
        if rows.labels != labels:
            raise DataError(f"{path}: has labels {list(rows.labels)}, not {list(labels)}")
    else:
        rows = TableRows(labels=labels, names=[], values=[], sources=[])
    entry = [bool(v) for v in values]
    if name in rows.names:
        i = rows.names.index(name)
        rows.values[i] = entry
        rows.sources[i] = source or rows.sources[i]
    else:
        rows.names.append(name)
        rows.values.append(entry)
        rows.sources.append(source)
    has_sources = any(s is not None for s in rows.sources)
    sources = [s or source_from_name(n) for n, s in zip(rows.names, rows.sources, strict=True)]
    write_table(path, rows.names, labels, rows.values, sources if has_sources else None)


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def read_class_folders(root: str | os.PathLike) -> Dataset:
    """``ROOT/<class>/<image>`` (Keras convention): classes are the sorted sub-folder names."""
    base = Path(root).absolute()
    if not base.is_dir():
        raise DataError(f"{base}: not a directory")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base}: no class folders (expected ROOT/<class>/<image>)")
    paths: list[Path] = []
    targets: list[int] = []
    for k, name in enumerate(classes):
        found = _images_under(base / name)
        paths += found
        targets += [k] * len(found)
    if not paths:
        raise DataError(f"{base}: no images in the class folders {classes}")
    _usable_labels(classes, str(base))
    y = np.zeros((len(paths), len(classes)), dtype=np.float32)
    y[np.arange(len(paths)), targets] = 1.0
    sources = [source_from_name(p.relative_to(base).as_posix()) for p in paths]
    return Dataset(paths=paths, y=y, labels=tuple(classes), task="multiclass", sources=sources)


def read_dataset(path: str | os.PathLike) -> Dataset:
    """A ``.csv`` lookup table, a folder holding ``labels.csv``, or a folder of class folders."""
    target = Path(path)
    if target.is_file():
        if target.suffix.lower() != ".csv":
            raise DataError(f"{target}: expected a .csv lookup table or a folder")
        return read_table(target)
    if target.is_dir():
        if (target / TABLE_NAME).is_file():
            return read_table(target / TABLE_NAME)
        return read_class_folders(target)
    raise DataError(f"{target}: no such file or folder")


def _usable_labels(labels: Sequence[str], where: str) -> None:
    """Refuse, before any training, a label the Pi could not publish or save: a label is an
    MQTT topic level and part of file names (the same rule conversion and the bundle apply)."""
    for label in labels:
        problem = label_problem(label)
        if problem is not None:
            raise DataError(
                f"{where}: label {label!r} {problem}; a label must be usable as an MQTT topic "
                "level and a file name (no '/', '#', '+', '\\', NUL, leading '$'): rename it"
            )
