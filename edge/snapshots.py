"""Heat-map snapshots of defects, with retention bounded by count, bytes and age.

One snapshot is three files sharing a stem: ``<stem>.jpg`` (the frame), ``<stem>.heat.jpg``
(the Grad-CAM heat map coloured and blended over the frame) and ``<stem>.json`` (event, scores,
model hash); the stem is ``<yyyymmdd>-<hhmmss>-<nnnnn>-<tag>`` (``STEM``). Files are written to
a temporary name and renamed, so a crash never leaves a half-written JPEG (a write that fails
removes its temporary file), and before every save the oldest snapshots are deleted until the
count, bytes and age limits hold and ``min_free_bytes`` stay free on the disk: the folder cannot
fill the disk however long the line runs. When there is no room (or the disk refuses writes)
snapshots stop cleanly: nothing half-written is left behind, the caller gets None, and
``health()`` says why until they work again.

The folder may hold other files (``snapshots.dir`` may name a folder shared with other things):
retention counts and deletes only regular files whose whole name is a ``STEM`` and one of the
three suffixes, and temporary files of such names, so it never touches a file it did not write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi_inspect.edge.health import Health

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".heat.jpg", ".json")
STEM = re.compile(r"\d{8}-\d{6}-\d{5}-[A-Za-z0-9_-]{1,40}")  # the one stem ``save`` writes
_NAME = re.compile(rf"({STEM.pattern})(\.heat\.jpg|\.jpg|\.json)")
_TEMPORARY = re.compile(rf"\.({_NAME.pattern})\.tmp")
_BLOCK = 4096  # a file takes whole blocks: room to reserve per file beyond its bytes


@dataclass(frozen=True)
class Saved:
    name: str  # the frame JPEG's file name
    jpeg: bytes  # the overlay (what an MQTT snapshot shows)


def overlay(frame_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Colour a [0, 1] heat map (JET), resize it to the frame and blend it over the frame."""
    import cv2

    h, w = frame_bgr.shape[:2]
    heat8 = np.clip(np.nan_to_num(heat) * 255.0, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(
        cv2.resize(heat8, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET
    )
    return cv2.addWeighted(frame_bgr, 1.0 - alpha, coloured, alpha, 0.0)


class SnapshotStore:
    """Writes snapshots into ``directory`` and prunes it to the retention limits. Thread-safe.

    A storage fault never reaches the caller: ``save`` returns None, removes whatever it had
    written of that snapshot (temporary files included) and ``health()`` says why, until a save
    works again (or, checked on ``health()``, the directory is writable with room again).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_count: int = 300,
        max_bytes: int = 200_000_000,
        max_age_s: float = 14 * 86400.0,
        min_free_bytes: int = 0,
        jpeg_quality: int = 85,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.min_free_bytes = min_free_bytes
        self.jpeg_quality = jpeg_quality
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._fault: str | None = None
        self._need = 0  # bytes the last skipped snapshot needed
        self._saved = 0
        self._skipped = 0
        self._warm_up()

    @staticmethod
    def _warm_up() -> None:
        """Encode one tiny overlay now: OpenCV sets up its JPEG and colour-map code lazily
        (about 2 MB), which would otherwise land on the first defect, as a jump in memory and
        in that frame's latency."""
        import cv2

        frame = np.zeros((48, 64, 3), np.uint8)
        cv2.imencode(".jpg", overlay(frame, np.zeros((6, 8), np.float32)))

    def save(
        self, frame_bgr: np.ndarray, heat: np.ndarray | None, meta: dict[str, Any], *, tag: str
    ) -> Saved | None:
        """Save frame, overlay and sidecar; the frame's file name and the overlay JPEG, or None
        when the snapshot could not be saved (see ``health()``)."""
        import cv2

        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.jpeg_quality]
        ok, frame_jpg = cv2.imencode(".jpg", frame_bgr, params)
        over_jpg = frame_jpg
        if ok and heat is not None:
            ok, over_jpg = cv2.imencode(".jpg", overlay(frame_bgr, heat), params)
        with self._lock:
            if not ok:
                return self._skip("snapshots not saved: the frame cannot be encoded as JPEG", 0)
            self._seq += 1
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
            stem = f"{stamp}-{self._seq % 100_000:05d}-{_safe(tag)}"
            sidecar = dict(
                meta, frame=f"{stem}.jpg", overlay=f"{stem}.heat.jpg" if heat is not None else None
            )
            files = [(f"{stem}.jpg", frame_jpg.tobytes())]
            if heat is not None:
                files.append((f"{stem}.heat.jpg", over_jpg.tobytes()))
            files.append((f"{stem}.json", json.dumps(sidecar, indent=1).encode()))
            need = sum(len(data) + _BLOCK for _, data in files)
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._prune(reserve_bytes=need)
                free = _free_bytes(self.directory)
                if free < need:
                    return self._skip(f"snapshots stopped: disk full ({self.directory})", need)
                if free < self.min_free_bytes + need:
                    return self._skip(
                        f"snapshots paused: {_mb(free)} free in {self.directory}, "
                        f"snapshots.min_free_bytes keeps {_mb(self.min_free_bytes)} free",
                        need,
                    )
                _write_all(self.directory, files)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                return self._skip(f"snapshots stopped: {reason} ({self.directory})", need)
            self._fault = None
            self._saved += 1
        return Saved(f"{stem}.jpg", over_jpg.tobytes())

    def _skip(self, fault: str, need: int) -> None:
        self._fault = fault
        self._need = need
        self._skipped += 1
        return None

    def health(self) -> Health:
        """Fault ``snapshots`` and the counts. A fault clears when a save works, or here when
        the directory takes writes again with room for the snapshot that was skipped."""
        with self._lock:
            if self._fault is not None and self._writable_with_room():
                self._fault = None
            return Health(
                faults={"snapshots": self._fault},
                stats={"snapshots_saved": self._saved, "snapshots_skipped": self._skipped},
            )

    def _writable_with_room(self) -> bool:
        try:
            if not os.access(self.directory, os.W_OK):
                return False
            st = os.statvfs(self.directory)
            if st.f_files and st.f_favail < len(SUFFIXES):  # no inodes: ENOSPC with bytes free
                return False
            return st.f_bavail * st.f_frsize >= self.min_free_bytes + self._need
        except OSError:
            return False

    def _groups(self) -> list[tuple[str, float, int, list[Path]]]:
        """(stem, mtime, bytes, files) per snapshot, oldest first: only the store's own files
        (see ``_stem_of``), never a link or a folder."""
        groups: dict[str, list[tuple[Path, os.stat_result]]] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                stem = stem_of(entry.name)
                if stem is None:
                    continue
                with contextlib.suppress(OSError):  # removed meanwhile
                    if entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        groups.setdefault(stem, []).append((Path(entry.path), stat))
        out = [
            (
                stem,
                max(s.st_mtime for _, s in files),
                sum(s.st_size for _, s in files),
                [f for f, _ in files],
            )
            for stem, files in groups.items()
        ]
        out.sort(key=lambda g: (g[1], g[0]))
        return out

    def _prune(self, reserve_bytes: int = 0) -> None:
        """Delete the oldest snapshots until the limits hold with room for one more of
        ``reserve_bytes`` (0: as they stand) and ``min_free_bytes`` stay free on the disk."""
        groups = self._groups()
        total = sum(g[2] for g in groups)
        now = self._clock()
        room = 1 if reserve_bytes else 0
        free = _free_bytes(self.directory) if self.min_free_bytes else 0
        while groups and (
            len(groups) + room > self.max_count
            or total + reserve_bytes > self.max_bytes
            or now - groups[0][1] > self.max_age_s
            or (self.min_free_bytes and free < self.min_free_bytes + reserve_bytes)
        ):
            _stem, _mtime, size, files = groups.pop(0)
            for f in files:
                f.unlink(missing_ok=True)
            total -= size
            free += size

    def prune(self) -> None:
        """Apply the limits now (e.g. at start-up, for snapshots left by an older run) and
        remove temporary files a crash left behind. Never raises."""
        with self._lock:
            try:
                if not self.directory.is_dir():
                    return
                for path in self.directory.iterdir():
                    if _is_temporary(path.name) and path.is_file() and not path.is_symlink():
                        path.unlink(missing_ok=True)
                self._prune()
            except OSError as exc:
                log.debug("snapshots not pruned: %s", exc)


def stem_of(name: str) -> str | None:
    """The stem of a file name ``save`` writes, else None (any other name is not ours)."""
    match = _NAME.fullmatch(name)
    return match.group(1) if match else None


def _safe(tag: str) -> str:
    """The tag as ``STEM`` spells it: ASCII letters, digits, ``-`` and ``_``, 1 to 40 of them."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in tag)
    return safe[:40] or "_"


def _is_temporary(name: str) -> bool:
    return _TEMPORARY.fullmatch(name) is not None


def _free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _write_all(directory: Path, files: list[tuple[str, bytes]]) -> None:
    """Write every file of one snapshot, or none: on an error the written ones are removed."""
    written: list[Path] = []
    try:
        for name, data in files:
            _atomic_write(directory / name, data)
            written.append(directory / name)
    except OSError:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a hidden temporary name, then rename; the temporary file never outlives a
    failure (a full disk fails the write, the flush or the fsync)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
