"""JPEG-coded frames decoded only as far as the model needs, and an HTTP MJPEG stream reader.

libjpeg can decode at 1/2, 1/4 or 1/8 scale straight from the DCT coefficients, skipping most of
the inverse transform and colour conversion; at 640x480 and a 96 px model that is a quarter of
the work of a full decode plus resize. ``JpegPixels`` keeps the compressed frame and decodes at
the smallest scale whose pixels still cover what was asked; the full decode happens only when
something (a snapshot) needs the full frame.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.view import IDENTITY, Frame, View

# cv2.IMREAD_REDUCED_COLOR_2/_4/_8; looked up lazily so importing this module stays cheap.
SCALES = (8, 4, 2)

# The largest frame decoded: the header's width x height is checked before any decode, so a
# hostile or broken header (40000x30000) never reaches libjpeg, for the model, a snapshot or the
# live view alike. 16 MP covers the Pi cameras (HQ 12.3 MP) and 4K USB cameras.
MAX_PIXELS = 16_777_216
BYTES_PER_PIXEL = 2  # a frame's file or stream part larger than this per pixel is not a frame
MAX_HEADER_LINES = 32  # headers of one multipart part


class FrameTooLarge(ValueError):
    """A frame (or file) larger than ``source.max_pixels`` allows: skipped before any decode."""


def frame_byte_limit(max_pixels: int) -> int:
    """The most bytes one compressed frame of ``max_pixels`` may take (1 MiB at least)."""
    return max(1 << 20, max_pixels * BYTES_PER_PIXEL)

# Start-of-frame markers that carry the image size (baseline, extended, progressive, lossless...).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, or None if it is not a JPEG."""
    # A view, not a copy: only the header is read, the packet may be tens of KB.
    buf = data.reshape(-1).data if isinstance(data, np.ndarray) else data
    if len(buf) < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        return None
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF:
            if i + 9 > n:
                return None
            height = (buf[i + 5] << 8) | buf[i + 6]
            width = (buf[i + 7] << 8) | buf[i + 8]
            return (width, height) if width and height else None
        if marker in (0xD9, 0xDA) or length < 2:  # end of image / scan before any SOF
            return None
        i += 2 + length
    return None


def pick_scale(size: tuple[int, int], needed: tuple[int, int]) -> int:
    """The largest DCT scale divisor (8, 4, 2, else 1) whose image still covers ``needed``."""
    width, height = size
    for s in SCALES:
        if width // s >= needed[0] and height // s >= needed[1]:
            return s
    return 1


class JpegPixels:
    """A compressed frame; decodes at a reduced DCT scale for the model, in full on demand."""

    def __init__(self, data: bytes | np.ndarray, size: tuple[int, int]) -> None:
        self.data = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data.reshape(-1)
        self.size = size
        self.scale = 1  # the scale of the last reduced decode (for stats and tests)

    @classmethod
    def of(cls, data: bytes | np.ndarray, max_pixels: int = MAX_PIXELS) -> JpegPixels:
        """The frame, checked before any decode: a JPEG whose header's size is at most
        ``max_pixels`` (ValueError otherwise)."""
        size = jpeg_size(data)
        if size is None:
            raise ValueError("not a JPEG (no start-of-frame header)")
        if size[0] * size[1] > max_pixels:
            raise FrameTooLarge(
                f"a {size[0]}x{size[1]} JPEG is over source.max_pixels ({max_pixels})"
            )
        return cls(data, size)

    def _decode(self, scale: int) -> np.ndarray:
        import cv2

        flag = {
            1: cv2.IMREAD_COLOR,
            2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8,
        }[scale]
        try:
            image = cv2.imdecode(self.data, flag | cv2.IMREAD_IGNORE_ORIENTATION)
        except cv2.error as exc:  # libjpeg's or OpenCV's own limits: a frame, not a crash
            raise ValueError(f"JPEG frame not decoded: {str(exc).strip().splitlines()[-1]}") from None
        if image is None or image.size == 0:
            raise ValueError("corrupt JPEG frame")
        return image

    def full(self) -> np.ndarray:
        return self._decode(1)

    def at_least(self, size: tuple[int, int]) -> np.ndarray:
        self.scale = pick_scale(self.size, size)
        return self._decode(self.scale)


class MjpegReader:
    """Frames of a ``multipart/x-mixed-replace`` HTTP stream (IP cameras, mjpg-streamer, ESP32).

    Each part is read by its ``Content-Length`` when the server sends one, otherwise up to the
    next boundary. ``read()`` returns the JPEG bytes of the next part; end of stream and
    malformed parts raise ``SourceError`` (a live source: the capture thread reconnects).
    Every read is bounded in bytes (``max_bytes`` a part, ``MAX_HEADER_LINES`` header lines of
    at most 8 KiB) and in time (a whole part within ``deadline_s``, however slowly it drips), so
    no server can make it hold memory or the capture thread for ever.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_bytes: int = frame_byte_limit(MAX_PIXELS),
        deadline_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._deadline_s = deadline_s
        self._clock = clock
        self._due = float("inf")
        try:
            self._response = urllib.request.urlopen(url, timeout=timeout_s)  # noqa: S310
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceError(f"cannot open {url}: {getattr(exc, 'reason', exc)}") from None
        ctype = self._response.headers.get("Content-Type", "")
        match = re.search(r'boundary="?([^";]+)"?', ctype)
        self.is_mjpeg = ctype.lower().startswith("multipart/") and match is not None
        boundary = match.group(1) if match else ""
        if boundary.startswith("--"):  # some servers put the dashes in the header too
            boundary = boundary[2:]
        self._delimiter = b"--" + boundary.encode("latin-1")
        self._stream: BinaryIO = self._response
        self._pending = b""

    def _in_time(self) -> None:
        if self._clock() > self._due:
            raise SourceError(f"MJPEG stream: no whole frame within {self._deadline_s:g} s")

    def _line(self) -> bytes:
        """One line of at most 8 KiB, read a byte at a time from the buffer so the deadline
        holds however slowly a header drips (headers are a few short lines a frame)."""
        line = bytearray()
        while len(line) < 8192 and not line.endswith(b"\n"):
            self._in_time()
            byte = self._stream.readline(1)
            if not byte:
                if not line:
                    raise SourceError("MJPEG stream ended")
                break
            line += byte
        return bytes(line)

    def _headers(self) -> dict[str, str]:
        """Skip to the next boundary line and return the part's headers."""
        for _ in range(64):  # blank lines and preamble before the boundary
            line = self._line().strip()
            if line.startswith(self._delimiter):
                break
        else:
            raise SourceError("MJPEG stream: no part boundary")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = self._line().strip()
            if not line:
                return headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raise SourceError(f"MJPEG stream: a part with more than {MAX_HEADER_LINES} header lines")

    def read(self) -> bytes:
        self._due = self._clock() + self._deadline_s
        try:
            headers = self._headers()
            length = headers.get("content-length")
            if length is not None and length.isascii() and length.isdigit():
                return self._exactly(int(length))
            return self._until_boundary()
        except OSError as exc:  # socket timeouts included
            raise SourceError(f"MJPEG stream read failed: {exc}") from None

    def _too_big(self, size: int) -> SourceError:
        return SourceError(f"MJPEG stream: a part of {size} bytes (more than {self._max_bytes})")

    def _exactly(self, length: int) -> bytes:
        """A part of ``length`` bytes, read in blocks so the deadline holds."""
        if length > self._max_bytes:
            raise self._too_big(length)
        chunks, got = [], 0
        while got < length:
            self._in_time()
            block = self._stream.read1(min(65536, length - got))
            if not block:
                raise SourceError("MJPEG stream ended inside a frame")
            chunks.append(block)
            got += len(block)
        return b"".join(chunks)

    def _until_boundary(self) -> bytes:
        """A part without Content-Length: everything up to the next boundary line."""
        chunks: list[bytes] = []
        mark = b"\r\n" + self._delimiter
        buf = b""
        held = 0
        while True:
            self._in_time()
            if held > self._max_bytes:
                raise self._too_big(held)
            block = self._stream.read1(65536)
            if not block:
                raise SourceError("MJPEG stream ended inside a frame")
            buf += block
            at = buf.find(mark)
            if at >= 0:
                chunks.append(buf[:at])
                # Put the boundary back: the next read() starts by looking for it.
                base, leftover = self._stream, b""
                if isinstance(base, _Prefixed):
                    base, leftover = base._rest, base._prefix
                self._stream = _Prefixed(buf[at + 2 :] + leftover, base)
                return b"".join(chunks)
            keep = len(mark)
            chunks.append(buf[:-keep])
            held += len(chunks[-1])
            buf = buf[-keep:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._response.close()


class _Prefixed:
    """A stream with some already-read bytes put back in front."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def _take(self, n: int) -> bytes:
        out, self._prefix = self._prefix[:n], self._prefix[n:]
        return out

    def readline(self, limit: int = -1) -> bytes:
        if self._prefix:
            at = self._prefix.find(b"\n")
            if at >= 0 and (limit < 0 or at < limit):
                return self._take(at + 1)
            if limit >= 0 and len(self._prefix) >= limit:
                return self._take(limit)
            head = self._take(len(self._prefix))
            return head + self._rest.readline(limit - len(head) if limit >= 0 else -1)
        return self._rest.readline(limit)

    def read(self, n: int) -> bytes:
        head = self._take(n)
        return head + (self._rest.read(n - len(head)) if len(head) < n else b"")

    def read1(self, n: int) -> bytes:
        if self._prefix:
            return self._take(n)
        return self._rest.read1(n)


class MjpegStreamSource:
    """An HTTP ``multipart/x-mixed-replace`` MJPEG stream, read by this module's small reader;
    a URL that serves something else (HLS, a video file) goes to ``fallback`` instead, the
    source the factory chose for it (OpenCV's)."""

    live = True

    def __init__(
        self,
        url: str,
        *,
        view: View = IDENTITY,
        timeout_s: float = 5.0,
        fallback: Callable[[], Any] | None = None,
        max_pixels: int = MAX_PIXELS,
        deadline_s: float = 15.0,
    ) -> None:
        self.name = url
        self.max_pixels = max_pixels
        self._deadline_s = deadline_s
        self.url = url
        self.view = view
        self._timeout = timeout_s
        self._reader: MjpegReader | None = None
        self._make_fallback = fallback
        self._fallback: Any = None
        self._index = 0

    def open(self) -> None:
        self.close()
        reader = MjpegReader(
            self.url,
            timeout_s=self._timeout,
            max_bytes=frame_byte_limit(self.max_pixels),
            deadline_s=self._deadline_s,
        )
        if reader.is_mjpeg:
            self._reader = reader
            return
        reader.close()
        if self._make_fallback is None:
            raise SourceError(f"{self.name} is not an MJPEG stream")
        self._fallback = self._make_fallback()  # a stream OpenCV/FFmpeg decodes (HLS, mp4)
        self._fallback.open()

    def read(self) -> Any:
        if self._fallback is not None:
            return self._fallback.read()
        if self._reader is None:
            raise SourceError(f"{self.name} is not open")
        data = self._reader.read()
        # ValueError (not a JPEG, over max_pixels): an unusable frame, the stream goes on
        frame = Frame(self._index, time.time(), pixels=JpegPixels.of(data, self.max_pixels), view=self.view)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None
