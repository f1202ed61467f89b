"""An image folder as a frame source, and the once-per-run warnings every source gives.

Every file is bounded before it is read: a file larger than a frame can be (``max_pixels``
times ``BYTES_PER_PIXEL``) is skipped unread, and a JPEG whose header claims more than
``max_pixels`` is skipped before any decode.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.jpeg import MAX_PIXELS, FrameTooLarge, JpegPixels, frame_byte_limit
from pi_inspect.edge.view import IDENTITY, Frame, View

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
JPEG_SUFFIXES = (".jpg", ".jpeg")

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


class FolderSource:
    """The images of a folder in name order; corrupt files are skipped with one warning each
    per run (not per reopen). JPEG files stay compressed until the model (reduced scale) or a
    snapshot needs pixels."""

    live = False

    def __init__(
        self,
        folder: str | Path,
        *,
        loop: bool = False,
        view: View = IDENTITY,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.folder = Path(folder)
        self.max_pixels = max_pixels
        self.loop = loop
        self.view = view
        self.name = str(folder)
        self._files: list[Path] = []
        self._next = 0
        self._index = 0
        self._read_in_pass = 0

    def open(self) -> None:
        if self.folder.is_file():
            raise SourceError(
                f'source.kind = "folder" but {self.folder} is a file: set kind = "file" '
                f'(or "auto") to play it'
            )
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
            try:
                pixels, image = self._load(path)
            except FrameTooLarge as exc:
                warn_once("too large", path, "skipping image %s: %s", path, exc)
                continue
            except ValueError:
                warn_once("unreadable", path, "skipping unreadable image %s", path)
                continue
            frame = Frame(self._index, time.time(), image, pixels=pixels, view=self.view)
            self._index += 1
            self._read_in_pass += 1
            return frame

    def _load(self, path: Path):
        """(JpegPixels, None) for a JPEG, (None, BGR image) for another format; ValueError when
        the file is unreadable, larger than a frame can be, or not an image."""
        import cv2

        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ValueError(f"unreadable ({exc.strerror or exc})") from None
        limit = frame_byte_limit(self.max_pixels)
        if size > limit:
            raise FrameTooLarge(f"{size} bytes, more than a frame of source.max_pixels ({limit})")
        if path.suffix.lower() in JPEG_SUFFIXES:
            return _jpeg_file(path, self.max_pixels), None
        size = _png_size(path)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise FrameTooLarge(f"a {size[0]}x{size[1]} PNG is over source.max_pixels")
        try:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        except cv2.error as exc:  # OpenCV's own limits: an unusable file, never a crash
            raise ValueError(str(exc).strip().splitlines()[-1]) from None
        if image is None or image.size == 0:
            raise ValueError("unreadable")
        if image.shape[0] * image.shape[1] > self.max_pixels:
            raise FrameTooLarge(f"{image.shape[1]}x{image.shape[0]} is over source.max_pixels")
        return None, image

    def close(self) -> None:
        self._files = []


def _jpeg_file(path: Path, max_pixels: int) -> JpegPixels:
    """A JPEG file, kept compressed; ValueError if unreadable or not a usable JPEG after all."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"unreadable ({exc.strerror or exc})") from None
    return JpegPixels.of(data, max_pixels)


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, read before any decode; None if not a PNG."""
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
