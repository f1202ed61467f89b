"""What part of a camera frame the station inspects, and frames that decode only what it needs.

A ``View`` is the region of interest (pixels or fractions of the frame) plus flips and a
rotation, applied in that order -- crop, flip, rotate -- before the one resize in
``pi_inspect.edge.preprocess.prepare``. The daemon, ``pi-inspect frames``/``label`` and the bundle manifest
all speak of the same ``View`` so training sees the pixels the station sees.

A ``Frame`` holds its pixels behind a small ``Pixels`` provider: a decoded array, a JPEG that
decodes at the smallest DCT scale that still covers the model input (pi_inspect.edge.jpeg), or a camera's
small and large streams (pi_inspect.edge.picamera). ``frame.prepare(size)`` builds the model input from the
cheapest pixels that suffice; ``frame.image`` (snapshots) decodes the full-resolution view once,
only when asked.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pi_inspect.edge.errors import SourceError

log = logging.getLogger(__name__)

Roi = tuple[float, float, float, float]


@dataclass(frozen=True)
class View:
    """Region of interest ``[x, y, w, h]`` (ints: pixels; floats: fractions), flips, rotation."""

    roi: tuple[int | float, int | float, int | float, int | float] | None = None
    rotate: int = 0  # degrees clockwise: 0, 90, 180, 270
    hflip: bool = False
    vflip: bool = False

    @property
    def identity(self) -> bool:
        return self.roi is None and self.rotate == 0 and not self.hflip and not self.vflip

    @property
    def fractional(self) -> bool:
        return self.roi is not None and any(isinstance(v, float) for v in self.roi)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``view`` (what a bundle was trained on)."""
        roi = list(self.roi) if self.roi is not None else None
        return {"roi": roi, "rotate": self.rotate, "hflip": self.hflip, "vflip": self.vflip}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> View:
        if not d:
            return cls()
        roi = d.get("roi")
        return cls(
            roi=tuple(roi) if roi is not None else None,
            rotate=int(d.get("rotate", 0)),
            hflip=bool(d.get("hflip", False)),
            vflip=bool(d.get("vflip", False)),
        )

    @classmethod
    def of(cls, source: Any) -> View:
        """The view a ``SourceConfig`` describes."""
        roi = getattr(source, "roi", None)
        return cls(
            roi=tuple(roi) if roi is not None else None,
            rotate=int(getattr(source, "rotate", 0)),
            hflip=bool(getattr(source, "hflip", False)),
            vflip=bool(getattr(source, "vflip", False)),
        )

    def without_flips(self) -> View:
        """This view with the flips done elsewhere (a camera's ISP)."""
        return View(self.roi, self.rotate)

    def fractions(self, size: tuple[int, int]) -> Roi:
        """The region as fractions ``(x, y, w, h)`` of a frame of ``size`` (w, h), clipped."""
        if self.roi is None:
            return (0.0, 0.0, 1.0, 1.0)
        width, height = size
        x, y, w, h = (float(v) for v in self.roi)
        if not self.fractional:
            x, y, w, h = x / width, y / height, w / width, h / height
        x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
        x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            raise RegionError(f"source.roi {list(self.roi)} lies outside the {width}x{height} frame")
        return (x0, y0, x1 - x0, y1 - y0)

    def needed(self, model_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
        """Smallest whole-frame size (w, h) whose region still covers ``model_size`` pixels."""
        mw, mh = model_size
        if self.rotate in (90, 270):
            mw, mh = mh, mw
        _, _, fw, fh = self.fractions(size)
        return math.ceil(mw / fw), math.ceil(mh / fh)

    def apply(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Crop, flip and rotate ``image``, a whole frame (at any scale) of a ``size`` frame."""
        if self.identity:
            return image
        import cv2

        h, w = image.shape[:2]
        x, y, fw, fh = self.fractions(size or (w, h))
        x0, y0 = round(x * w), round(y * h)
        x1, y1 = max(x0 + 1, round((x + fw) * w)), max(y0 + 1, round((y + fh) * h))
        out = image[y0:y1, x0:x1]
        if self.hflip and self.vflip:
            out = cv2.flip(out, -1)
        elif self.hflip or self.vflip:
            out = cv2.flip(out, 1 if self.hflip else 0)
        if self.rotate:
            code = {
                90: cv2.ROTATE_90_CLOCKWISE,
                180: cv2.ROTATE_180,
                270: cv2.ROTATE_90_COUNTERCLOCKWISE,
            }[self.rotate]
            out = cv2.rotate(out, code)
        return np.ascontiguousarray(out)


IDENTITY = View()


class RegionError(SourceError):
    """The configured region does not meet the frame: a camera fault until the config changes."""


class Pixels(Protocol):
    """Where a frame's pixels come from."""

    size: tuple[int, int]  # (w, h) of the full frame

    def full(self) -> np.ndarray: ...

    def at_least(self, size: tuple[int, int]) -> np.ndarray: ...


class ArrayPixels:
    """An already decoded BGR frame: every size is the full one."""

    def __init__(self, image: np.ndarray) -> None:
        self._image = image
        self.size = (int(image.shape[1]), int(image.shape[0]))

    def full(self) -> np.ndarray:
        return self._image

    def at_least(self, size: tuple[int, int]) -> np.ndarray:
        return self._image


class Frame:
    """One captured frame. ``index`` counts frames in the source (files: position);
    ``timestamp`` is the unix time of capture; ``image`` is the full-resolution BGR view."""

    __slots__ = ("index", "timestamp", "view", "pixels", "_image", "_lock")

    def __init__(
        self,
        index: int,
        timestamp: float,
        image: np.ndarray | None = None,
        *,
        pixels: Pixels | None = None,
        view: View = IDENTITY,
    ) -> None:
        if (image is None) == (pixels is None):
            raise ValueError("a Frame needs either image or pixels")
        self.index = index
        self.timestamp = timestamp
        self.view = view
        self.pixels: Pixels = pixels if pixels is not None else ArrayPixels(image)
        self._image: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def image(self) -> np.ndarray:
        """The view at full resolution, decoded (and cropped) on first use only."""
        with self._lock:
            if self._image is None:
                self._image = self.view.apply(self.pixels.full(), self.pixels.size)
            return self._image

    def region(self, model_size: tuple[int, int]) -> np.ndarray:
        """The view from the cheapest pixels that still cover ``model_size`` (w, h)."""
        with self._lock:
            if self._image is not None:
                return self._image
        size = self.pixels.size
        return self.view.apply(self.pixels.at_least(self.view.needed(model_size, size)), size)

    def prepare(self, model_size: tuple[int, int]) -> np.ndarray:
        """The model input: uint8 RGB at ``model_size`` (w, h), resized by the one function."""
        from pi_inspect.edge.preprocess import prepare

        return prepare(self.region(model_size), model_size)


def trained_view(classifier: Any) -> View | None:
    """The view a bundle's model was trained on (manifest ``view``); None if not recorded."""
    raw = getattr(getattr(classifier, "manifest", None), "raw", None) or {}
    if "view" not in raw:
        return None
    return View.from_dict(raw["view"])


def describe(view: View) -> str:
    roi = "whole frame" if view.roi is None else f"roi {list(view.roi)}"
    flips = "".join(f", {name}" for name in ("hflip", "vflip") if getattr(view, name))
    return f"{roi}, rotate {view.rotate}{flips}"


def same_view(a: View, b: View) -> bool:
    if (a.rotate, a.hflip, a.vflip) != (b.rotate, b.hflip, b.vflip):
        return False
    if a.roi is None or b.roi is None:
        return a.roi is None and b.roi is None
    if a.fractional != b.fractional:
        return False
    return all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a.roi, b.roi, strict=True))


def warn_if_view_differs(classifier: Any, source: Any) -> str | None:
    """Log (and return) a warning when the station looks at other pixels than the model was
    trained on; a bundle that records no view is not compared."""
    trained = trained_view(classifier)
    if trained is None:
        return None
    station = View.of(source)
    if same_view(trained, station):
        return None
    message = (
        f"the station's view ({describe(station)}) differs from the one the model was trained "
        f"on ({describe(trained)}): set source.roi/rotate/hflip/vflip to match, or retrain"
    )
    log.warning("%s", message)
    return message


def station_view(config_path: Any) -> View:
    """The view a station's config file describes (``--station-config`` of frames/label/train),
    so training data is cut the way the station cuts its frames."""
    from pi_inspect.edge.config import load_config

    return View.of(load_config(config_path).source)
