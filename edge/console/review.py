""" "This verdict is wrong": the frame and the model's output kept for relabelling, bounded.

One item is a folder ``<id>/`` in the review folder with ``frame.jpg`` (the frame as the camera
saw it, the pixels to relabel), ``heat.jpg`` when a heat map was at hand, and ``item.json``
(scores, thresholds, verdict, model, time, and what the operator said). Items are written to a
temporary folder and renamed, so a crash (or a write the disk refuses) never leaves half an item.
Ids are generated here and checked against one pattern before any path is built from them.

The folder shares the disk with snapshots and the MQTT spool, so it is bounded three ways:
beyond ``max_count`` items or ``max_bytes`` the oldest go; an item that would leave less than
``min_free_bytes`` free on the disk is refused (other files took the room: the operator's items
are not deleted for them); more than ``max_per_minute`` items a minute are refused. A refusal is a
``ReviewRefused`` whose message says why. Only folders named by ``ITEM_ID`` that hold an
``item.json``, and within them only the three file names, are ever counted or deleted: other
files in the folder are left alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pi_inspect.edge.errors import PiInspectError

log = logging.getLogger(__name__)

ITEM_ID = re.compile(r"\d{8}-\d{6}-\d{5}")
FILES = ("frame.jpg", "heat.jpg", "item.json")
_TEMPORARY = re.compile(rf"\.{ITEM_ID.pattern}\.tmp")
_BLOCK = 4096  # a file (and a folder) takes whole blocks: room to reserve beyond its bytes
WINDOW_S = 60.0  # the rate limit's window


class ReviewRefused(PiInspectError):
    """An item not kept because a bound of the review folder holds (the message says which)."""


class ReviewStore:
    """A bounded folder of review items (thread-safe)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_count: int = 500,
        max_bytes: int = 100_000_000,
        min_free_bytes: int = 100_000_000,
        max_per_minute: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.max_per_minute = max_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._kept: list[float] = []  # clock times of the items kept in the last minute

    def add(self, frame_jpeg: bytes, heat_jpeg: bytes | None, meta: dict[str, Any]) -> str:
        """Keep one item; returns its id. Raises ``ReviewRefused`` when a bound holds and
        ``OSError`` when the disk refuses the write; either way nothing of the item is left."""
        with self._lock:
            now = self._clock()
            self._check_rate(now)
            self.directory.mkdir(parents=True, exist_ok=True)
            items = self._items()
            item_id = self._next_id(items, now)
            record = dict(meta, id=item_id, kept_at=now)
            files = [("frame.jpg", frame_jpeg)]
            if heat_jpeg is not None:
                files.append(("heat.jpg", heat_jpeg))
            files.append(("item.json", json.dumps(record, indent=1, sort_keys=True).encode()))
            need = sum(len(data) + _BLOCK for _, data in files) + _BLOCK
            if need > self.max_bytes:
                raise ReviewRefused(
                    f"not kept: the item ({_mb(need)}) is larger than "
                    f"console.review_max_bytes ({_mb(self.max_bytes)})"
                )
            going = self._oldest_beyond_bounds(items, need)
            self._check_room(need - sum(size for _, size in going), len(files) + 1)
            for old, _size in going:
                _remove_item(self.directory / old)
            _write_item(self.directory, item_id, files)
            self._kept.append(now)
        return item_id

    def prune(self) -> None:
        """Apply the count and bytes bounds now (e.g. at start, after they were lowered) and
        remove temporary folders a crash left behind. Never raises."""
        with self._lock:
            try:
                if not self.directory.is_dir():
                    return
                for path in self.directory.iterdir():
                    if _TEMPORARY.fullmatch(path.name):
                        _remove_item(path)
                for old, _size in self._oldest_beyond_bounds(self._items(), 0):
                    _remove_item(self.directory / old)
            except OSError as exc:
                log.debug("review folder not pruned: %s", exc)

    def ids(self) -> list[str]:
        """Item ids, oldest first."""
        with self._lock:
            return [item_id for item_id, _ in self._items()]

    def path(self, item_id: str, name: str) -> Path | None:
        """The file ``name`` of item ``item_id`` if both are valid and it exists, else None."""
        if not ITEM_ID.fullmatch(item_id) or name not in FILES:
            return None
        path = self.directory / item_id / name
        return path if path.is_file() else None

    def read(self, item_id: str) -> dict[str, Any] | None:
        path = self.path(item_id, "item.json")
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def _check_rate(self, now: float) -> None:
        self._kept = [t for t in self._kept if 0.0 <= now - t < WINDOW_S]
        if len(self._kept) >= self.max_per_minute:
            wait = max(1, math.ceil(WINDOW_S - (now - self._kept[0])))
            raise ReviewRefused(
                f"not kept: at most {self.max_per_minute} review items a minute "
                f"(console.review_max_per_minute); try again in {wait} s"
            )

    def _check_room(self, need: int, inodes: int) -> None:
        """Refuse an item that would leave less than ``min_free_bytes`` free (``need``: the
        bytes it adds once the oldest beyond the bounds are gone)."""
        st = os.statvfs(self.directory)
        free = st.f_bavail * st.f_frsize
        if st.f_files and st.f_favail < inodes:
            raise ReviewRefused(f"not kept: no room for more files in {self.directory}")
        if free < self.min_free_bytes + max(need, 0):
            raise ReviewRefused(
                f"not kept: {_mb(free)} free in {self.directory}, console.review_min_free_bytes "
                f"keeps {_mb(self.min_free_bytes)} free for snapshots and events"
            )

    def _oldest_beyond_bounds(
        self, items: list[tuple[str, int]], need: int
    ) -> list[tuple[str, int]]:
        """The oldest items to delete so that count and bytes hold with room for one more item
        of ``need`` bytes (0: as they stand)."""
        room = 1 if need else 0
        total = sum(size for _, size in items)
        going: list[tuple[str, int]] = []
        for item in items:
            if len(items) - len(going) + room <= self.max_count and total + need <= self.max_bytes:
                break
            going.append(item)
            total -= item[1]
        return going

    def _items(self) -> list[tuple[str, int]]:
        """(id, bytes) of the items in the folder, oldest first: folders (not links) named by
        ``ITEM_ID`` holding an ``item.json``; bytes count the item's own files only."""
        if not self.directory.is_dir():
            return []
        items = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if ITEM_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                    sizes = _own_files(Path(entry.path))
                    if "item.json" in sizes:
                        items.append((entry.name, sum(sizes.values())))
        items.sort()
        return items

    def _next_id(self, items: list[tuple[str, int]], now: float) -> str:
        self._seq = max(self._seq, *(int(i[-5:]) for i, _ in items), 0)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        while True:
            self._seq += 1
            item_id = f"{stamp}-{self._seq % 100_000:05d}"
            if not os.path.lexists(self.directory / item_id):
                return item_id


def _own_files(folder: Path) -> dict[str, int]:
    """Name -> bytes of the regular files in ``folder`` named in ``FILES`` (links are not)."""
    sizes = {}
    for name in FILES:
        with contextlib.suppress(OSError):  # absent, or removed meanwhile
            st = os.lstat(folder / name)
            if stat.S_ISREG(st.st_mode):
                sizes[name] = st.st_size
    return sizes


def _remove_item(folder: Path) -> None:
    """Delete an item's own files, then its folder if nothing else is in it."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for name in _own_files(folder):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something that is not ours stays, with its folder
        folder.rmdir()


def _write_item(directory: Path, item_id: str, files: list[tuple[str, bytes]]) -> None:
    """Write the item to a temporary folder and rename it; on any error nothing is left."""
    tmp = directory / f".{item_id}.tmp"
    _remove_item(tmp)
    tmp.mkdir()
    try:
        for name, data in files:
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.rename(tmp, directory / item_id)
    except BaseException:
        _remove_item(tmp)
        raise


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
