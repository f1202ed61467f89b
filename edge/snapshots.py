"""Heat-map snapshots of defects, with retention bounded by count, bytes and age.

One snapshot is three files sharing a stem: ``<stem>.jpg`` (the frame), ``<stem>.heat.jpg``
(the Grad-CAM heat map coloured and blended over the frame) and ``<stem>.json`` (event, scores,
model hash). Files are written to a temporary name and renamed, so a crash never leaves a
half-written JPEG, and after every save the oldest snapshots are deleted until all three limits
hold: the folder cannot fill the disk however long the line runs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".heat.jpg", ".json")


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
    """Writes snapshots into ``directory`` and prunes it to the retention limits. Thread-safe."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_count: int = 300,
        max_bytes: int = 200_000_000,
        max_age_s: float = 14 * 86400.0,
        jpeg_quality: int = 85,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.jpeg_quality = jpeg_quality
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
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
    ) -> Saved:
        """Save frame, overlay and sidecar; returns the frame's file name and the overlay JPEG."""
        import cv2

        params = [int(cv2.IMWRITE_JPEG_QUALITY), self.jpeg_quality]
        ok, frame_jpg = cv2.imencode(".jpg", frame_bgr, params)
        if not ok:
            raise OSError("cannot encode snapshot frame as JPEG")
        over_jpg = frame_jpg
        if heat is not None:
            ok, over_jpg = cv2.imencode(".jpg", overlay(frame_bgr, heat), params)
            if not ok:
                raise OSError("cannot encode snapshot overlay as JPEG")
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
            stem = f"{stamp}-{self._seq:05d}-{_safe(tag)}"
            sidecar = dict(
                meta, frame=f"{stem}.jpg", overlay=f"{stem}.heat.jpg" if heat is not None else None
            )
            _atomic_write(self.directory / f"{stem}.jpg", frame_jpg.tobytes())
            if heat is not None:
                _atomic_write(self.directory / f"{stem}.heat.jpg", over_jpg.tobytes())
            _atomic_write(self.directory / f"{stem}.json", json.dumps(sidecar, indent=1).encode())
            self._prune()
        return Saved(f"{stem}.jpg", over_jpg.tobytes())

    def _groups(self) -> list[tuple[str, float, int, list[Path]]]:
        """(stem, mtime, bytes, files) per snapshot, oldest first."""
        groups: dict[str, list[Path]] = {}
        for path in self.directory.iterdir():
            stem = _stem_of(path.name)
            if stem is not None:
                groups.setdefault(stem, []).append(path)
        out = []
        for stem, files in groups.items():
            stats = [f.stat() for f in files if f.exists()]
            if stats:
                out.append(
                    (stem, max(s.st_mtime for s in stats), sum(s.st_size for s in stats), files)
                )
        out.sort(key=lambda g: (g[1], g[0]))
        return out

    def _prune(self) -> None:
        groups = self._groups()
        total = sum(g[2] for g in groups)
        now = self._clock()
        while groups and (
            len(groups) > self.max_count
            or total > self.max_bytes
            or now - groups[0][1] > self.max_age_s
        ):
            _stem, _mtime, size, files = groups.pop(0)
            for f in files:
                f.unlink(missing_ok=True)
            total -= size

    def prune(self) -> None:
        """Apply the limits now (e.g. at start-up, for snapshots left by an older run)."""
        with self._lock:
            if self.directory.is_dir():
                self._prune()


def _stem_of(name: str) -> str | None:
    if name.startswith("."):
        return None  # temporary files
    for suffix in SUFFIXES[::-1]:  # longest first: ".heat.jpg" before ".jpg"
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _safe(tag: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in tag)[:40]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
