"""Camera degradations: blur (in mm, before sampling), light fall-off, sensor noise, JPEG.

Blur is applied on the canvas in millimetres so every output size gets the same optical
blur; illumination is a per-pixel gain in normalised image coordinates; noise and JPEG are
per frame (a video gets fresh noise every frame, like a real sensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Optics:
    exposure: float
    white_balance: tuple[float, float, float]  # RGB gains
    gradient: float  # linear illumination gradient amplitude
    gradient_angle: float
    vignette: float
    blur_mm: float  # gaussian sigma in mm (defocus)
    motion_mm: float  # motion-blur length in mm
    motion_angle: float  # radians in the seam frame
    noise: float  # sensor noise sigma in 8-bit units
    jpeg_quality: int  # 0 = no JPEG round trip

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Optics:
        return cls(
            exposure=float(rng.uniform(0.75, 1.2)),
            white_balance=tuple(float(x) for x in rng.uniform(0.9, 1.1, 3)),
            gradient=float(rng.uniform(0.0, 0.3)),
            gradient_angle=float(rng.uniform(0, 2 * math.pi)),
            vignette=float(rng.uniform(0.0, 0.35)),
            blur_mm=float(rng.uniform(0.0, 0.09)),
            motion_mm=float(rng.uniform(0.0, 0.35) if rng.random() < 0.5 else 0.0),
            motion_angle=float(rng.uniform(0, math.pi)),
            noise=float(rng.uniform(1.0, 6.0)),
            jpeg_quality=int(rng.integers(40, 93)) if rng.random() < 0.8 else 0,
        )


def blur_canvas(
    img: np.ndarray, optics: Optics, ppm: float, motion_angle: float | None = None
) -> np.ndarray:
    """Defocus and motion blur on a canvas of ``ppm`` pixels per mm."""
    import cv2

    sigma = optics.blur_mm * ppm
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    length = optics.motion_mm * ppm
    if length >= 1.5:
        angle = optics.motion_angle if motion_angle is None else motion_angle
        k = int(math.ceil(length)) | 1
        kernel = np.zeros((k, k), np.float32)
        c = (k - 1) / 2
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        cv2.line(
            kernel,
            (round((c - dx) * 16), round((c - dy) * 16)),
            (round((c + dx) * 16), round((c + dy) * 16)),
            1.0,
            1,
            cv2.LINE_AA,
            4,
        )
        kernel /= max(kernel.sum(), 1e-6)
        img = cv2.filter2D(img, -1, kernel)
    return img


def light_map(optics: Optics, size: tuple[int, int]) -> np.ndarray:
    """Per-pixel BGR gain (h, w, 3) times 255: exposure, white balance, gradient, vignetting."""
    w, h = size
    x = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    y = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xx, yy = np.meshgrid(x, y)
    g = (
        1.0
        + optics.gradient
        * (xx * math.cos(optics.gradient_angle) + yy * math.sin(optics.gradient_angle))
        / 2
    )
    vig = 1.0 - optics.vignette * (xx**2 + yy**2) / 2
    wb_bgr = np.asarray(optics.white_balance[::-1], np.float32)
    gain = (g * vig * (optics.exposure * 255.0))[..., None] * wb_bgr
    return np.ascontiguousarray(gain, dtype=np.float32)


def sensor_noise(optics: Optics, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Fresh gaussian sensor noise (8-bit units) for one image."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= np.float32(optics.noise)
    return noise


class NoiseBank:
    """Per-frame sensor noise for a video: random crops of a few pre-drawn noise fields.

    Drawing 230 k gaussians per frame costs more than everything else in a frame; a random
    crop of one of several larger fields is statistically the same noise and nearly free.
    """

    def __init__(
        self,
        optics: Optics,
        size: tuple[int, int],
        rng: np.random.Generator,
        fields: int = 6,
        pad: int = 24,
    ) -> None:
        w, h = size
        self._size = size
        self._pad = pad
        self._rng = rng
        self._fields = [sensor_noise(optics, (h + pad, w + pad, 3), rng) for _ in range(fields)]

    def next(self) -> np.ndarray:
        w, h = self._size
        f = self._fields[int(self._rng.integers(len(self._fields)))]
        y, x = (int(v) for v in self._rng.integers(0, self._pad + 1, 2))
        return f[y : y + h, x : x + w]


def finish(bgr: np.ndarray, gain: np.ndarray, noise: np.ndarray, jpeg_quality: int) -> np.ndarray:
    """Light, noise, quantise, JPEG: float BGR in [0, 1] -> uint8 BGR as a camera would save it."""
    import cv2

    img = cv2.multiply(bgr, gain)
    out = cv2.add(img, noise, dtype=cv2.CV_8U)  # saturating round to uint8
    if jpeg_quality:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out
