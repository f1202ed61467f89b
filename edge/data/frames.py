"""Frames from a recorded video, named the way seed 001 names them: ``<video>_<frame>.png``.

That naming carries the source video into the file name, which is what the split uses to keep
all frames of one recording in one split. ``frames.csv`` records the same explicitly.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pi_inspect.edge.errors import DataError, SourceError
from pi_inspect.edge.view import View

log = logging.getLogger(__name__)

FRAMES_CSV = "frames.csv"


def frame_name(stem: str, index: int, expected: int | None) -> str:
    """``<stem>_<index>.png``, the index zero-padded to five digits (or as many as the video's
    announced frame count ``expected`` needs) so the names sort in frame order."""
    digits = max(5, len(str(expected or 0)))
    return f"{stem}_{index:0{digits}d}.png"


def check_selection(every: int, start: int, limit: int | None) -> None:
    """``every`` >= 1, ``start`` >= 0, ``limit`` None or >= 0; else DataError."""
    if every < 1 or start < 0 or (limit is not None and limit < 0):
        raise DataError(f"bad frame selection: every={every} start={start} max={limit}")


class VideoFrames:
    """Sequential frames of a video file as ``(index, bgr)``; a context manager.

    Reading stops at the end of the file or at the first frame the decoder cannot deliver;
    ``truncated`` then says whether the container promised more frames than were read.
    """

    def __init__(self, video: str | os.PathLike) -> None:
        import cv2

        self.path = Path(video)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{self.path}: cannot open video (unknown format or damaged)")
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.expected = int(count) if count and count > 0 else None  # from the container header
        self.consumed = 0  # frames decoded or skipped so far
        self.ended = False  # the decoder delivered no further frame

    def frames(self, every: int = 1, start: int = 0, limit: int | None = None) -> Iterator:
        """Yield ``(index, bgr)`` for frames ``start, start+every, ...`` (at most ``limit``)."""
        check_selection(every, start, limit)
        given = 0
        while limit is None or given < limit:
            index = self.consumed
            wanted = index >= start and (index - start) % every == 0
            if wanted:
                ok, frame = self._cap.read()
            else:
                ok, frame = self._cap.grab(), None
            if not ok or (wanted and frame is None):
                self.ended = True
                return
            self.consumed += 1
            if wanted:
                given += 1
                yield index, frame

    @property
    def truncated(self) -> bool:
        """The decoder stopped before the frame count the container header announced."""
        return self.ended and self.expected is not None and self.consumed < self.expected

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def __enter__(self) -> VideoFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_png(path: Path, bgr: np.ndarray) -> None:
    """Write a PNG or raise SourceError (cv2.imwrite only returns False)."""
    import cv2

    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise SourceError(f"{path}: cannot encode frame as PNG")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise SourceError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _record(out_dir: Path, rows: list[tuple[str, str, int]]) -> None:
    """Merge ``(name, source, frame)`` rows into ``out_dir/frames.csv`` (same name replaces)."""
    table = out_dir / FRAMES_CSV
    merged: dict[str, tuple[str, str, int]] = {}
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("name"):
                    merged[row["name"]] = (row["name"], row.get("source", ""), row.get("frame", ""))
    for row in rows:
        merged[row[0]] = row
    tmp = table.with_name(f".{FRAMES_CSV}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["name", "source", "frame"])
        writer.writerows(merged.values())
    os.replace(tmp, table)


def extract_frames(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    every: int = 1,
    start: int = 0,
    max_frames: int | None = None,
    view: View | None = None,
) -> list[Path]:
    """Write every ``every``-th frame from ``start`` as ``out_dir/<stem>_<index>.png`` (named by
    ``frame_name``: the index zero-padded so the names sort in frame order), cut to a station's
    ``view`` (region, flips, rotation) when one is given.

    Also records them in ``out_dir/frames.csv`` (``name,source,frame``). A missing or
    unopenable video raises SourceError; a truncated or corrupt one yields the frames that
    decode, with one warning.
    """
    check_selection(every, start, max_frames)
    folder = Path(out_dir)
    written: list[Path] = []
    rows: list[tuple[str, str, int]] = []
    with VideoFrames(video) as reader:
        stem = reader.path.stem
        folder.mkdir(parents=True, exist_ok=True)
        for index, frame in reader.frames(every=every, start=start, limit=max_frames):
            path = folder / frame_name(stem, index, reader.expected)
            write_png(path, view.apply(frame) if view is not None else frame)
            written.append(path)
            rows.append((path.name, stem, index))
        if reader.truncated:
            log.warning(
                "%s: video ends after %d of %d frames (truncated or corrupt); extracted %d",
                reader.path,
                reader.consumed,
                reader.expected,
                len(written),
            )
    if rows:
        _record(folder, rows)
    return written
