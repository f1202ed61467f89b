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


def blur_canvas(img: np.ndarray, optics: Optics, ppm: float, motion_angle: float | None = None) -> np.ndarray:
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
        cv2.line(kernel, (round((c - dx) * 16), round((c - dy) * 16)),
                 (round((c + dx) * 16), round((c + dy) * 16)), 1.0, 1, cv2.LINE_AA, 4)
        kernel /= max(kernel.sum(), 1e-6)
        img = cv2.filter2D(img, -1, kernel)
    return img


def light_map(optics: Optics, size: tuple[int, int]) -> np.ndarray:
    """Per-pixel RGB gain (h, w, 3): exposure x white balance x gradient x vignetting."""
    w, h = size
    x = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    y = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xx, yy = np.meshgrid(x, y)
    g = 1.0 + optics.gradient * (xx * math.cos(optics.gradient_angle)
                                 + yy * math.sin(optics.gradient_angle)) / 2
    vig = 1.0 - optics.vignette * (xx**2 + yy**2) / 2
    gain = (g * vig * optics.exposure)[..., None] * np.asarray(optics.white_balance, np.float32)
    return gain.astype(np.float32)


def finish(rgb: np.ndarray, gain: np.ndarray, optics: Optics, rng: np.random.Generator) -> np.ndarray:
    """Light, noise, quantise, JPEG: float RGB in [0, 1] -> uint8 BGR as a camera would save it."""
    import cv2

    img = rgb * gain * 255.0
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(optics.noise)
    bgr = np.clip(img[..., ::-1], 0, 255).astype(np.uint8)
    if optics.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, optics.jpeg_quality])
        if ok:
            bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return bgr
