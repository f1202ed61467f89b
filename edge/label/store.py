"""Where labelled frames go: the output folder and nothing else.

``TableStore`` (multi-label) writes ``DIR/<frame>.png`` plus its row in ``DIR/labels.csv``;
``ClassFolderStore`` (multi-class) writes ``DIR/<class>/<frame>.png``. File names come from the
frame source, never from a request, and every target is checked to lie inside DIR.

Writes do not trust a path checked earlier: the folder is opened step by step with
``O_NOFOLLOW`` (a symlinked class folder or output folder is refused), the frame is written to a
temporary file in that opened folder and renamed over the target there (``os.replace`` on the
folder's descriptor replaces a symlink planted at the target instead of writing through it).
Swapping the path for a symlink between check and write therefore cannot put a file outside DIR.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Protocol

import numpy as np

from pi_inspect.edge.data.table import TABLE_NAME, read_rows, upsert_row
from pi_inspect.edge.errors import DataError, SourceError

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


def _plain_name(name: str) -> None:
    if not _SAFE_FILE.fullmatch(name) or name.startswith("."):
        raise DataError(f"unsafe file name {name!r}")


def inside(root: Path, name: str, *parts: str) -> Path:
    """``root/parts/name``, refusing anything that would resolve outside ``root``."""
    _plain_name(name)
    target = root.joinpath(*parts, name)
    base = root.resolve()
    if target.resolve().parent != base.joinpath(*parts).resolve() or base not in (
        target.resolve().parents
    ):
        raise DataError(f"{name!r} would be written outside {root}")
    return target


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor on ``root/parts``, refusing a symlink at ``root`` or any part."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise DataError(f"output folder {root}: {exc.strerror or exc} (a symlink?)") from None
    for part in parts:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            why = "is a symlink" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
            raise DataError(f"{root / part}: {why}; refusing to write through it") from None
        os.close(fd)
        fd = child
    return fd


def write_inside(root: Path, name: str, data: bytes, *parts: str) -> Path:
    """Write ``data`` as ``root/parts/name`` atomically without following symlinks.

    ``name`` and ``parts`` are single plain components; no path is resolved (that would race).
    """
    _plain_name(name)
    target = root.joinpath(*parts, name)
    fd = _open_dir(root, parts)
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise DataError(f"{target} is not a regular file (a symlink?); refusing it")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(tmp, flags, 0o644, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=fd)
        raise SourceError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return target


def unlink_inside(root: Path, name: str, *parts: str) -> None:
    """Remove ``root/parts/name`` if there (a symlink there is removed, never followed)."""
    _plain_name(name)
    fd = _open_dir(root, parts)
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _png(frame: np.ndarray, name: str) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", frame)
    if not ok:
        raise SourceError(f"{name}: cannot encode frame as PNG")
    return buf.tobytes()


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
        Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(root).resolve()  # a symlinked --out is followed once, here
        self.labels = labels
        self.table = self.root / TABLE_NAME
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
        write_inside(self.root, name, _png(frame, name))
        if self.table.is_symlink():
            raise DataError(f"{self.table} is a symlink; refusing to write through it")
        upsert_row(self.table, name, self.labels, values, source=source)  # temp file + replace
        self._rows[name] = list(values)
        self._last = name


class ClassFolderStore:
    """Multi-class: ``DIR/<class>/<frame>.png``; relabelling moves the frame to its new class."""

    def __init__(self, root: str | os.PathLike, labels: tuple[str, ...]) -> None:
        check_labels(labels)
        Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(root).resolve()  # a symlinked --out is followed once, here
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
        write_inside(self.root, name, _png(frame, name), chosen)
        for label in self.labels:
            if label != chosen:
                unlink_inside(self.root, name, label)
        self._rows[name] = [bool(v) for v in values]
        self._last = name
