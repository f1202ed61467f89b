"""Random access to the frames being labelled: a video file or a folder of images."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

from pi_inspect.edge.data.frames import frame_name
from pi_inspect.edge.data.table import IMAGE_SUFFIXES, source_from_name
from pi_inspect.edge.errors import DataError, SourceError
from pi_inspect.edge.label import suggest
from pi_inspect.edge.view import View


class FrameSource(Protocol):
    """Frames by index, each with the PNG file name it is saved under and its group id."""

    def __len__(self) -> int: ...

    def name(self, index: int) -> str: ...

    def source_id(self, index: int) -> str: ...

    def read(self, index: int) -> np.ndarray: ...

    def close(self) -> None: ...


class VideoFrameSource:
    """Frames of a video, decoded sequentially (exact, unlike seeking) with a small cache.

    Frames are named as ``pi-inspect frames`` names them (``<stem>_00042.png``).

    Going forward one frame costs one decode; going back re-reads from the start unless the
    frame is still in the cache, which holds the last ``cache`` frames seen.
    """

    def __init__(self, video: str | os.PathLike, cache: int = 64) -> None:
        import cv2

        self.path = Path(video)
        self.stem = self.path.stem
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        self._cap = None
        self._open()
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._expected = count if count > 0 else None  # what frame names are padded for
        self._count = count if count > 0 else self._count_by_reading()
        if self._count == 0:
            raise SourceError(f"{self.path}: video has no frames")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = max(1, cache)

    def _open(self) -> None:
        import cv2

        if self._cap is not None:
            self._cap.release()
        self._cap = cv2.VideoCapture(str(self.path))
        self._pos = 0  # index of the frame the next read() returns
        if not self._cap.isOpened():
            raise SourceError(f"{self.path}: cannot open video (unknown format or damaged)")

    def _count_by_reading(self) -> int:
        n = 0
        while self._cap.grab():
            n += 1
        self._open()
        return n

    def __len__(self) -> int:
        return self._count

    def name(self, index: int) -> str:
        return frame_name(self.stem, index, self._expected)

    def source_id(self, index: int) -> str:
        return self.stem

    def read(self, index: int) -> np.ndarray:
        """The BGR frame ``index``; SourceError if the video cannot deliver it."""
        if not 0 <= index < self._count:
            raise SourceError(f"frame {index} out of range 0..{self._count - 1}")
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        if index < self._pos:
            self._open()
        while self._pos < index:
            if not self._cap.grab():
                raise SourceError(f"{self.path}: frame {index} cannot be decoded")
            self._pos += 1
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._open()  # leave the reader in a known state for the next request
            raise SourceError(f"{self.path}: frame {index} cannot be decoded")
        self._pos += 1
        self._cache[index] = frame
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class FolderFrameSource:
    """The images of one folder (not recursive), sorted by name, saved as ``<stem>.png``."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: not a folder")
        self._paths = sorted(
            p
            for p in self.folder.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not self._paths:
            raise SourceError(f"{self.folder}: no images")
        stems: dict[str, Path] = {}
        for p in self._paths:
            if p.stem in stems:
                raise DataError(f"{p} and {stems[p.stem]} would both be saved as {p.stem}.png")
            stems[p.stem] = p

    def __len__(self) -> int:
        return len(self._paths)

    def name(self, index: int) -> str:
        return f"{self._paths[index].stem}.png"

    def source_id(self, index: int) -> str:
        return source_from_name(self.name(index))

    def read(self, index: int) -> np.ndarray:
        import cv2

        if not 0 <= index < len(self._paths):
            raise SourceError(f"image {index} out of range 0..{len(self._paths) - 1}")
        path = self._paths[index]
        data = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise SourceError(f"{path}: cannot decode image")
        return img

    def close(self) -> None:
        """Nothing to release; here for the FrameSource protocol."""


class ViewedFrames:
    """Frames cut to a station's view (pi_inspect.edge.view), so labels are given on what the model sees."""

    def __init__(self, frames: FrameSource, view: View) -> None:
        self._frames = frames
        self._view = view

    def __len__(self) -> int:
        return len(self._frames)

    def name(self, index: int) -> str:
        return self._frames.name(index)

    def source_id(self, index: int) -> str:
        return self._frames.source_id(index)

    def read(self, index: int) -> np.ndarray:
        return self._view.apply(self._frames.read(index))

    def close(self) -> None:
        self._frames.close()


class OrderedFrames:
    """Frames in another order: index ``i`` here is frame ``order[i]`` of the source."""

    def __init__(self, frames: FrameSource, order: list[int]) -> None:
        if sorted(order) != list(range(len(frames))):
            raise ValueError("order must list every frame once")
        self._frames = frames
        self._order = list(order)

    def __len__(self) -> int:
        return len(self._order)

    def name(self, index: int) -> str:
        return self._frames.name(self._order[index])

    def source_id(self, index: int) -> str:
        return self._frames.source_id(self._order[index])

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self._order):
            raise SourceError(f"frame {index} out of range 0..{len(self._order) - 1}")
        return self._frames.read(self._order[index])

    def close(self) -> None:
        self._frames.close()


def with_suggestions(
    frames: FrameSource, source: str | os.PathLike, labels: tuple[str, ...]
) -> tuple[FrameSource, dict[str, suggest.Suggestion]]:
    """For a folder with a ``samples.csv`` (``pi-inspect pull``) in it or above it: the frames
    in uncertainty order and each frame's suggestion by name; else the frames as they are."""
    samples = suggest.find_samples(source) if Path(source).is_dir() else None
    if samples is None:
        return frames, {}
    names = [frames.name(i) for i in range(len(frames))]
    found = suggest.suggestions(names, suggest.read_samples(samples), labels)
    if not found:
        return frames, {}
    return OrderedFrames(frames, suggest.uncertainty_order(names, found)), found


def open_frames(source: str | os.PathLike) -> FrameSource:
    """A folder gives its images, a file is opened as a video."""
    path = Path(source)
    if path.is_dir():
        return FolderFrameSource(path)
    return VideoFrameSource(path)
