"""Where labelled frames go: the output folder and nothing else.

``TableStore`` (multi-label) writes ``DIR/<frame>.png`` plus its row in ``DIR/labels.csv``;
``ClassFolderStore`` (multi-class) writes ``DIR/<class>/<frame>.png``. File names come from the
frame source, never from a request, and every target is checked to lie inside DIR.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.data.frames import write_png
from edge.data.table import TABLE_NAME, read_rows, upsert_row
from edge.errors import DataError

_SAFE_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")
_SAFE_FILE = re.compile(r"[^/\\\0]{1,200}\.png")


def check_labels(labels: tuple[str, ...]) -> None:
    """Label names become CSV columns and class folder names: keep them plain."""
    if not labels:
        raise DataError("no labels given")
    for label in labels:
        if not _SAFE_LABEL.fullmatch(label) or label in ("name", "source"):
            raise DataError(f"label {label!r}: use letters, digits, '_' or '-' (not name/source)")
    if len(set(labels)) != len(labels):
        raise DataError(f"duplicate labels in {list(labels)}")


def inside(root: Path, name: str, *parts: str) -> Path:
    """``root/parts/name``, refusing anything that would resolve outside ``root``."""
    if not _SAFE_FILE.fullmatch(name) or name.startswith("."):
        raise DataError(f"unsafe file name {name!r}")
    target = root.joinpath(*parts, name)
    base = root.resolve()
    if target.resolve().parent != base.joinpath(*parts).resolve() or base not in (
        target.resolve().parents
    ):
        raise DataError(f"{name!r} would be written outside {root}")
    return target


class LabelStore(Protocol):
    """Saved labels by frame file name; ``save`` writes the frame and its labels."""

    labels: tuple[str, ...]

    def saved(self) -> dict[str, list[bool]]: ...

    def last_saved(self) -> str | None: ...

    def save(self, name: str, source: str, frame: np.ndarray, values: list[bool]) -> None: ...


class TableStore:
    """Multi-label: ``DIR/<frame>.png`` and one row per frame in ``DIR/labels.csv``."""

    def __init__(self, root: str | os.PathLike, labels: tuple[str, ...]) -> None:
        check_labels(labels)
        self.root = Path(root)
        self.labels = labels
        self.table = self.root / TABLE_NAME
        self.root.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, list[bool]] = {}
        self._last: str | None = None
        if self.table.exists():
            rows = read_rows(self.table)
            if rows.labels != labels:
                raise DataError(f"{self.table} has labels {list(rows.labels)}, not {list(labels)}")
            self._rows = dict(zip(rows.names, rows.values, strict=True))
            self._last = rows.names[-1] if rows.names else None

    def saved(self) -> dict[str, list[bool]]:
        return dict(self._rows)

    def last_saved(self) -> str | None:
        return self._last

    def save(self, name: str, source: str, frame: np.ndarray, values: list[bool]) -> None:
        write_png(inside(self.root, name), frame)
        upsert_row(self.table, name, self.labels, values, source=source)
        self._rows[name] = list(values)
        self._last = name


class ClassFolderStore:
    """Multi-class: ``DIR/<class>/<frame>.png``; relabelling moves the frame to its new class."""

    def __init__(self, root: str | os.PathLike, labels: tuple[str, ...]) -> None:
        check_labels(labels)
        self.root = Path(root)
        self.labels = labels
        self._rows: dict[str, list[bool]] = {}
        self._last: str | None = None
        newest = -1.0
        for k, label in enumerate(labels):
            folder = self.root / label
            folder.mkdir(parents=True, exist_ok=True)  # every class exists, even if still empty
            for png in folder.glob("*.png"):
                self._rows[png.name] = [i == k for i in range(len(labels))]
                mtime = png.stat().st_mtime
                if mtime > newest:
                    newest, self._last = mtime, png.name

    def saved(self) -> dict[str, list[bool]]:
        return dict(self._rows)

    def last_saved(self) -> str | None:
        return self._last

    def save(self, name: str, source: str, frame: np.ndarray, values: list[bool]) -> None:
        if sum(bool(v) for v in values) != 1:
            raise DataError("multi-class needs exactly one class")
        chosen = self.labels[[bool(v) for v in values].index(True)]
        write_png(inside(self.root, name, chosen), frame)
        for label in self.labels:
            if label != chosen:
                inside(self.root, name, label).unlink(missing_ok=True)
        self._rows[name] = [bool(v) for v in values]
        self._last = name
