"""The one preprocessing function shared by training, conversion and the Pi.

A model takes uint8 RGB pixels at its input size; any rescaling or normalisation is a layer
inside the model. What happens before the model -- resize and colour conversion -- is here
and only here, so training and the edge cannot drift apart.
"""

from __future__ import annotations

import numpy as np

# OpenCV decodes to BGR; models are trained on RGB.
COLOUR_ORDER = "rgb"
RESIZE = "area"


def prepare(frame_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a BGR (or grey) frame to ``size`` = (width, height) and return it as uint8 RGB.

    INTER_AREA when shrinking (it averages, so fine stitches don't alias away) and
    INTER_LINEAR when enlarging. Returns a new contiguous ``(height, width, 3)`` uint8 array.
    """
    import cv2

    if frame_bgr is None or frame_bgr.size == 0:
        raise ValueError("empty frame")
    width, height = int(size[0]), int(size[1])
    img = frame_bgr
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    h, w = img.shape[:2]
    if (w, h) != (width, height):
        shrinking = w * h >= width * height
        interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        img = cv2.resize(img, (width, height), interpolation=interp)
    # cvtColor swaps the channels into a new array ~20x faster than numpy's reversed-stride copy
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """Read an image file and ``prepare`` it. Raises ``ValueError`` if it cannot be decoded."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return prepare(img, size)
