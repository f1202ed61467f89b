"""The ``[source]`` config section: where frames come from, and what ``auto`` resolves to.

Pure validation, no I/O, except that resolving an ``auto`` path looks whether it is a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator
from pydantic_core import PydanticCustomError

from pi_inspect.edge.config_checks import camera_index
from pi_inspect.edge.controls import ControlsConfig
from pi_inspect.edge.section import Section

MAX_USB_INDEX = 255  # /dev/video0 .. /dev/video255 (V4L2's minor range)


class SourceConfig(Section):
    """Where frames come from."""

    kind: Literal["auto", "usb", "picamera2", "stream", "file", "folder"] = "auto"
    # USB index ("0") or /dev/videoN, rtsp:// or http(s):// URL, video file, image folder.
    uri: Annotated[str, BeforeValidator(camera_index)] = Field(default="0", min_length=1)
    loop: bool = False  # video file / image folder: start again at the end
    width: Annotated[int, Field(ge=16, le=8192)] | None = None  # camera request, if set
    height: Annotated[int, Field(ge=16, le=8192)] | None = None
    fps: Annotated[float, Field(gt=0, le=240)] | None = None
    realtime: bool = False  # video file: play at its own frame rate (not as fast as it decodes)
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # What the station inspects (edge/view.py): [x, y, w, h] in pixels (ints) or fractions of
    # the frame (floats), then flips, then a clockwise rotation; all before the resize.
    roi: Annotated[list[int | float], Field(min_length=4, max_length=4)] | None = None
    rotate: Literal[0, 90, 180, 270] = 0
    hflip: bool = False
    vflip: bool = False
    # USB cameras: "auto" asks for MJPG and decodes only what the model needs, else YUYV.
    fourcc: Literal["auto", "MJPG", "YUYV"] = "auto"
    camera_num: Annotated[int, Field(ge=0, le=7)] = 0  # picamera2: which camera port
    # The largest frame decoded (width x height, checked in the header before any decode): a
    # frame over it is skipped as unusable, and a file larger than such a frame is never read.
    max_pixels: Annotated[int, Field(ge=4096, le=268_435_456)] = 16_777_216
    # A stream must deliver each whole frame within this time, however slowly it drips.
    frame_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    controls: ControlsConfig = ControlsConfig()

    @field_validator("roi")
    @classmethod
    def _roi_valid(cls, value: list | None) -> list | None:
        if value is None:
            return value
        x, y, w, h = value
        if any(isinstance(v, float) for v in value):
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 and 0 < h <= 1):
                raise PydanticCustomError("roi", "fractions: 0 <= x, y < 1 and 0 < w, h <= 1")
            if x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
                raise PydanticCustomError("roi", "fractions: x + w and y + h must be <= 1")
        elif x < 0 or y < 0 or w < 8 or h < 8:
            raise PydanticCustomError("roi", "pixels: x, y >= 0 and w, h >= 8")
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise PydanticCustomError("order", "must be >= reconnect_min_s ({low})", {"low": low})
        return value

    @field_validator("uri")
    @classmethod
    def _usb_index_in_range(cls, uri: str, info) -> str:
        """A camera index OpenCV cannot take would kill the capture thread, not fail an open."""
        usb = info.data.get("kind") in ("auto", "usb") and uri.isdigit()
        if usb and (not uri.isascii() or len(uri) > 3 or int(uri) > MAX_USB_INDEX):
            raise PydanticCustomError(
                "usb_index",
                "camera index {uri} is not in 0-{top}",
                {"uri": uri if len(uri) <= 12 else uri[:12] + "...", "top": MAX_USB_INDEX},
            )
        return uri

    def resolved(self) -> SourceKind:
        """What ``kind`` (``auto`` judged from ``uri``) means; the one place that decides it.

        Looks at the disk only to tell a folder from a file, and only for an ``auto`` path.
        """
        kind = self.kind
        if kind == "auto":
            uri = self.uri
            if uri.isdigit() or uri.startswith("/dev/"):  # /dev/videoN, /dev/v4l/by-id/...
                kind = "usb"
            elif uri == "picamera2":
                kind = "picamera2"
            elif "://" in uri:
                kind = "stream"
            else:
                kind = "folder" if Path(uri).is_dir() else "file"
        return SourceKind(kind, live=kind in _LIVE_KINDS, is_path=kind in ("file", "folder"))


_LIVE_KINDS = ("usb", "picamera2", "stream")


@dataclass(frozen=True)
class SourceKind:
    """A resolved source: its kind, whether it is live (a camera or stream: drop old frames,
    never ends) and whether ``uri`` is a path (a file or folder: relative to the config file)."""

    name: str  # usb, picamera2, stream, file or folder
    live: bool
    is_path: bool
