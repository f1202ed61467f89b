""" "This verdict is wrong": the frame and the model's output kept for relabelling, bounded.

One item is a folder ``<id>/`` in the review folder with ``frame.jpg`` (the frame as the camera
saw it, the pixels to relabel), ``heat.jpg`` when a heat map was at hand, and ``item.json``
(scores, thresholds, verdict, model, time, and what the operator said). Items are written to a
temporary folder and renamed, so a crash never leaves half an item; beyond ``max_count`` the
oldest are deleted. Ids are generated here and checked against one pattern before any path is
built from them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ITEM_ID = re.compile(r"\d{8}-\d{6}-\d{5}")
FILES = ("frame.jpg", "heat.jpg", "item.json")


class ReviewStore:
    """A bounded folder of review items (thread-safe)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_count: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_count = max_count
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0

    def add(self, frame_jpeg: bytes, heat_jpeg: bytes | None, meta: dict[str, Any]) -> str:
        """Keep one item; returns its id."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            existing = self.ids()
            self._seq = max(self._seq, *(int(i[-5:]) for i in existing), 0) + 1
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
            item_id = f"{stamp}-{self._seq % 100_000:05d}"
            tmp = self.directory / f".{item_id}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            _write(tmp / "frame.jpg", frame_jpeg)
            if heat_jpeg is not None:
                _write(tmp / "heat.jpg", heat_jpeg)
            record = dict(meta, id=item_id, kept_at=self._clock())
            _write(tmp / "item.json", json.dumps(record, indent=1, sort_keys=True).encode())
            os.replace(tmp, self.directory / item_id)
            for old in [*existing, item_id][: -self.max_count]:
                shutil.rmtree(self.directory / old, ignore_errors=True)
        return item_id

    def ids(self) -> list[str]:
        """Item ids, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if ITEM_ID.fullmatch(p.name))

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


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
