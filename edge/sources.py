"""Camera sources: picamera2, OpenCV (USB/V4L2 camera, RTSP/HTTP stream, video file), HTTP MJPEG
stream, image folder.

JPEG-coded sources (USB cameras in MJPG mode, MJPEG AVI files, HTTP MJPEG streams, JPEG folders)
hand over the compressed frame: ``Frame.prepare`` decodes it at the smallest DCT scale that
covers the model input (pi_inspect.edge.jpeg), and only a snapshot decodes it in full. Every source applies
the station's ``View`` (region of interest, flips, rotation; pi_inspect.edge.view) before the resize.

Every source has the same small life cycle: ``open()`` (raises SourceError), ``read()`` returning
a ``Frame`` or ``None`` at the natural end of a file/folder (raises SourceError when a live
device fails), and an idempotent ``close()`` after which ``open()`` may be called again: the
capture thread reopens a failed source with backoff instead of giving up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pi_inspect.edge.controls import ControlsConfig, apply_v4l2, lock_v4l2_exposure
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.folder_source import (  # noqa: F401 - part of the sources API
    IMAGE_SUFFIXES,
    JPEG_SUFFIXES,
    FolderSource,
    warn_once,
)
from pi_inspect.edge.jpeg import MAX_PIXELS, JpegPixels, MjpegStreamSource, jpeg_size
from pi_inspect.edge.view import IDENTITY, Frame, View

if TYPE_CHECKING:
    from pi_inspect.edge.config import SourceConfig

__all__ = ["Frame", "FrameSource", "FolderSource", "OpenCVSource", "MjpegStreamSource"]

log = logging.getLogger(__name__)

MJPG = int.from_bytes(b"MJPG", "little")


class Pacer:
    """Plays a file at a frame rate (demos, dry runs): each ``wait()`` returns one frame period
    after the previous one, or at once when late. Clock and sleep are injected (for tests)."""

    def __init__(
        self,
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.period = 1.0 / fps
        self._clock, self._sleep = clock, sleep
        self._due: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._due is not None and self._due > now:
            self._sleep(self._due - now)
            now = self._due
        self._due = now + self.period


class FrameSource(Protocol):
    name: str
    live: bool  # a camera or stream (drop old frames), not a file or folder (process all)

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


class OpenCVSource:
    """A USB/V4L2 camera (index or /dev/videoN), an RTSP/HTTP stream, or a video file.

    With ``raw_jpeg`` a USB camera in MJPG mode (V4L2, ``CAP_PROP_CONVERT_RGB`` off) or an MJPG
    video file (FFmpeg, ``CAP_PROP_FORMAT`` -1) delivers its compressed frames, decoded only as
    far as the model needs; other formats fall back to OpenCV's decoded frames.
    """

    def __init__(
        self,
        target: int | str,
        *,
        live: bool,
        loop: bool = False,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        realtime: bool = False,
        view: View = IDENTITY,
        raw_jpeg: bool = False,
        fourcc: str | None = None,
        controls: ControlsConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        """``fps``: a camera's frame rate, a file's playback rate; a ``realtime`` file plays at
        its own rate unless ``fps`` is given, otherwise as fast as frames decode."""
        self.target, self.live, self.max_pixels = target, live, max_pixels
        self._realtime = realtime and not live
        self._sleep = sleep
        self._pacer: Pacer | None = Pacer(fps, clock, sleep) if fps and not live else None
        self.loop = loop and not live
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.view = view
        self.raw_jpeg = raw_jpeg
        self.raw = False  # this opening delivers compressed JPEG frames
        self._fourcc = fourcc
        self._controls = controls
        self._clock = clock
        self._lock_at: float | None = None
        self._size = (width, height)
        self._fps, self._cap = fps, None
        self._probe: np.ndarray | None = None  # the first raw frame, read to check it decodes
        self._position = 0  # frames read from the current pass over a file
        self._index = 0  # frames read in total (continues across loops)
        self._length = 0

    def _capture(self, raw: bool) -> Any:
        import cv2

        if self.live and isinstance(self.target, int) or str(self.target).startswith("/dev/"):
            cap = cv2.VideoCapture(self.target, cv2.CAP_V4L2) if raw else None
            if cap is None or not cap.isOpened():
                cap = cv2.VideoCapture(self.target)
        else:
            cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG) if raw else None
            if cap is None or not cap.isOpened():
                cap = cv2.VideoCapture(self.target)
        return cap

    def open(self) -> None:
        import cv2

        self.close()
        if not self.live and Path(str(self.target)).is_dir():
            raise SourceError(
                f'source.kind = "file" but {self.target} is a folder: set kind = "folder" '
                f'(or "auto") to read the images in it'
            )
        if not self.live and not Path(str(self.target)).is_file():
            raise SourceError(f"video file not found: {self.target}")
        cap = self._capture(self.raw_jpeg)
        if not cap.isOpened():
            cap.release()
            hint = " (truncated or not a video?)" if not self.live else ""
            raise SourceError(f"cannot open {self.name}{hint}")
        if self.live:
            if self._fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self._fourcc))
            width, height = self._size
            if width and height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if self._fps:
                cap.set(cv2.CAP_PROP_FPS, self._fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we want the newest frame, not a backlog
            if self._controls is not None:
                apply_v4l2(cap, self._controls, self.name)
                after = self._controls.lock_exposure_after_s
                self._lock_at = self._clock() + after if after is not None else None
        self._length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not self.live else 0
        if self._realtime and self._pacer is None:
            own = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if 0.0 < own <= 1000.0:
                self._pacer = Pacer(own, self._clock, self._sleep)
            else:
                log.warning("%s has no frame rate in its header; playing as fast as it decodes", self.name)
        self._position = 0
        self._cap = cap
        self.raw = self.raw_jpeg and self._start_raw(cap)

    def _start_raw(self, cap: Any) -> bool:
        """Switch ``cap`` to compressed frames if it delivers MJPG that libjpeg decodes."""
        import cv2

        if int(cap.get(cv2.CAP_PROP_FOURCC)) != MJPG:
            return False
        prop = cv2.CAP_PROP_CONVERT_RGB if self.live else cv2.CAP_PROP_FORMAT
        if not cap.set(prop, 0 if self.live else -1):
            return False
        ok, packet = cap.read()
        single_row = ok and packet is not None and packet.ndim == 2 and packet.shape[0] == 1
        if single_row and jpeg_size(packet) is not None and self._decodes(packet):
            self._probe = packet
            return True
        # Not JPEG data after all (or JPEG libjpeg cannot read): decoded frames, from the start.
        log.info("%s: compressed frames not usable; decoding every frame in full", self.name)
        cap.release()
        self._cap = None
        self.raw_jpeg = False
        self.open()
        return False

    @staticmethod
    def _decodes(packet: np.ndarray) -> bool:
        import cv2

        return cv2.imdecode(packet.reshape(-1), cv2.IMREAD_REDUCED_COLOR_8) is not None

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open")
        if self._probe is not None:
            ok, image = True, self._probe
            self._probe = None
        else:
            ok, image = self._cap.read()
        if ok and image is not None and image.size:
            if self._pacer is not None:
                self._pacer.wait()
            if self.raw:  # not a JPEG, or over max_pixels: ValueError, an unusable frame
                pixels = JpegPixels.of(image, self.max_pixels)
                frame = Frame(self._index, time.time(), pixels=pixels, view=self.view)
            else:
                frame = Frame(self._index, time.time(), image, view=self.view)
            self._index += 1
            self._position += 1
            if self._lock_at is not None and self._clock() >= self._lock_at:
                self._lock_at = None
                lock_v4l2_exposure(self._cap, self.name)
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
        self._probe = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> OpenCVSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_source(config: SourceConfig, model_size: tuple[int, int] | None = None) -> FrameSource:
    """Build (but do not open) the source a config describes; ``model_size`` (w, h) lets a camera
    with a second, small stream (picamera2's lores) size it for the model."""
    kind = config.resolved().name
    view = View.of(config)
    bound = config.max_pixels
    if kind == "picamera2":
        from pi_inspect.edge.picamera import PiCamera2Source

        return PiCamera2Source(
            config.width,
            config.height,
            camera_num=config.camera_num,
            controls=config.controls,
            view=view,
            model_size=model_size,
        )
    if kind == "folder":
        return FolderSource(config.uri, loop=config.loop, view=view, max_pixels=bound)
    if kind == "usb":
        target: int | str = int(config.uri) if config.uri.isdigit() else config.uri
        fourcc = "MJPG" if config.fourcc == "auto" else config.fourcc
        return OpenCVSource(
            target,
            live=True,
            width=config.width,
            height=config.height,
            fps=config.fps,
            view=view,
            raw_jpeg=fourcc == "MJPG",
            fourcc=fourcc,
            controls=config.controls,
            max_pixels=bound,
        )
    if kind == "stream":
        stream = OpenCVSource(config.uri, live=True, view=view)  # not opened until asked for
        if config.uri.lower().startswith(("http://", "https://")):
            return MjpegStreamSource(
                config.uri,
                view=view,
                fallback=lambda: stream,
                max_pixels=bound,
                timeout_s=min(5.0, config.frame_timeout_s),
                deadline_s=config.frame_timeout_s,
            )
        return stream
    return OpenCVSource(
        config.uri,
        live=False,
        loop=config.loop,
        view=view,
        raw_jpeg=True,
        fps=config.fps,
        realtime=config.realtime,
        max_pixels=bound,
    )
