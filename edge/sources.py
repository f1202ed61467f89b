"""Camera sources: picamera2, OpenCV (USB/V4L2 camera, RTSP/HTTP stream, video file), image folder.

Every source has the same small life cycle: ``open()`` (raises SourceError), ``read()`` returning
a ``Frame`` or ``None`` at the natural end of a file/folder (raises SourceError when a live
device fails), and an idempotent ``close()`` after which ``open()`` may be called again: the
capture thread reopens a failed source with backoff instead of giving up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.errors import SourceError

if TYPE_CHECKING:
    from edge.config import SourceConfig

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# Warnings about a file, each given once per run: the capture thread builds a new source on every
# reopen, so a warning kept per source object would repeat for ever. Bounded like any memory.
_WARNED: set[tuple[str, str]] = set()
_WARNED_MAX = 10_000


def warn_once(kind: str, path: object, message: str, *args: object) -> None:
    """``log.warning(message, *args)`` the first time ``kind`` is said of ``path`` in this run."""
    key = (kind, str(path))
    if key in _WARNED:
        log.debug(message, *args)
        return
    if len(_WARNED) < _WARNED_MAX:
        _WARNED.add(key)
    log.warning(message, *args)


@dataclass(frozen=True)
class Frame:
    """One captured BGR frame; ``index`` counts frames in the source (files: position)."""

    index: int
    timestamp: float  # unix time of capture
    image: np.ndarray


class FrameSource(Protocol):
    name: str
    live: bool  # a camera or stream (drop old frames), not a file or folder (process all)

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


class OpenCVSource:
    """A USB/V4L2 camera (index or /dev/videoN), an RTSP/HTTP stream, or a video file."""

    def __init__(
        self,
        target: int | str,
        *,
        live: bool,
        loop: bool = False,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
    ) -> None:
        self.target = target
        self.live = live
        self.loop = loop and not live
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self._size = (width, height)
        self._fps = fps
        self._cap = None
        self._position = 0  # frames read from the current pass over a file
        self._index = 0  # frames read in total (continues across loops)
        self._length = 0

    def open(self) -> None:
        import cv2

        self.close()
        if not self.live and not Path(str(self.target)).is_file():
            raise SourceError(f"video file not found: {self.target}")
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            hint = " (truncated or not a video?)" if not self.live else ""
            raise SourceError(f"cannot open {self.name}{hint}")
        width, height = self._size
        if self.live and width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self.live and self._fps:
            cap.set(cv2.CAP_PROP_FPS, self._fps)
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a backlog
        self._length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not self.live else 0
        self._position = 0
        self._cap = cap

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        ok, image = self._cap.read()
        if ok and image is not None and image.size:
            frame = Frame(self._index, time.time(), image)
            self._index += 1
            self._position += 1
            return frame
        if self.live:
            raise SourceError(f"{self.name} stopped delivering frames")
        self._warn_if_truncated()
        if self.loop and self._position > 0:
            self.open()
            return self.read()
        return None

    def _warn_if_truncated(self) -> None:
        if self._length > 0 and self._position < self._length - 1:
            warn_once(
                "truncated",
                self.target,
                "%s ended at frame %d of %d: the file looks truncated",
                self.name,
                self._position,
                self._length,
            )

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> OpenCVSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderSource:
    """The images of a folder in name order; corrupt files are skipped with one warning each
    per run (not per reopen)."""

    live = False

    def __init__(self, folder: str | Path, *, loop: bool = False) -> None:
        self.folder = Path(folder)
        self.loop = loop
        self.name = str(folder)
        self._files: list[Path] = []
        self._next = 0
        self._index = 0
        self._read_in_pass = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder not found: {self.folder}")
        files = sorted(
            p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not files:
            raise SourceError(f"no images in {self.folder}")
        self._files = files
        self._next = 0
        self._read_in_pass = 0

    def read(self) -> Frame | None:
        import cv2

        while True:
            if self._next >= len(self._files):
                if not self.loop:
                    return None
                if self._read_in_pass == 0:
                    raise SourceError(f"no readable images in {self.folder}")
                self._next = 0
                self._read_in_pass = 0
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or image.size == 0:
                warn_once("unreadable", path, "skipping unreadable image %s", path)
                continue
            frame = Frame(self._index, time.time(), image)
            self._index += 1
            self._read_in_pass += 1
            return frame

    def close(self) -> None:
        self._files = []


class PiCamera2Source:
    """The Raspberry Pi camera through picamera2 (from apt on the Pi; imported on open)."""

    live = True

    def __init__(self, width: int | None = None, height: int | None = None) -> None:
        self.name = "picamera2"
        self._size = (width or 640, height or 480)
        self._cam = None
        self._index = 0

    def open(self) -> None:
        self.close()
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError(
                "picamera2 is not installed (on the Pi: sudo apt install python3-picamera2)"
            ) from None
        try:
            cam = Picamera2()
            # "RGB888" in libcamera is B,G,R in memory: the order OpenCV and prepare() expect.
            cam.configure(
                cam.create_video_configuration(main={"size": self._size, "format": "RGB888"})
            )
            cam.start()
        except Exception as exc:  # picamera2 raises RuntimeError/IndexError/OSError
            raise SourceError(f"cannot open picamera2: {exc}") from None
        self._cam = cam

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError("picamera2 is not open")
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise SourceError(f"picamera2 read failed: {exc}") from None
        frame = Frame(self._index, time.time(), np.ascontiguousarray(image[:, :, :3]))
        self._index += 1
        return frame

    def close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            try:
                cam.stop()
                cam.close()
            except Exception as exc:  # closing a dead camera must not kill the daemon
                log.debug("picamera2 close: %s", exc)


def make_source(config: SourceConfig) -> FrameSource:
    """Build (but do not open) the source a config describes."""
    kind = config.resolved().name
    if kind == "picamera2":
        return PiCamera2Source(config.width, config.height)
    if kind == "folder":
        return FolderSource(config.uri, loop=config.loop)
    if kind == "usb":
        target: int | str = int(config.uri) if config.uri.isdigit() else config.uri
        return OpenCVSource(
            target, live=True, width=config.width, height=config.height, fps=config.fps
        )
    if kind == "stream":
        return OpenCVSource(config.uri, live=True)
    return OpenCVSource(config.uri, live=False, loop=config.loop)
