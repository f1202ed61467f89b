"""Decode a list of image files into one uint8 RGB batch, skipping what cannot be read.

A data set of 15 000 frames always has a few broken files (a zero-byte PNG from a crashed save,
a stray text file). They are reported once each and masked out; they never stop a training run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger(__name__)


def decode_image(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """Read one image and ``prepare`` it to ``size`` = (width, height) uint8 RGB.

    Decodes from bytes (no OpenCV path warnings, non-ASCII paths work); raises ValueError with
    the reason when the file is empty or not an image, OSError when it cannot be read.
    """
    import cv2

    from pi_inspect.edge.preprocess import prepare

    data = np.fromfile(os.fspath(path), dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty file")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a decodable image")
    return prepare(img, size)


def load_images(
    paths: Sequence[str | os.PathLike], size: tuple[int, int], workers: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``paths`` to uint8 ``(n, h, w, 3)`` RGB and a bool mask of the readable ones.

    ``size`` is (width, height), as for ``pi_inspect.edge.preprocess.prepare``. Unreadable images stay
    zero in the batch with ``mask[i] = False``; each gets one warning line and a count follows.
    OpenCV releases the GIL while decoding, so threads give real parallelism.
    """
    width, height = int(size[0]), int(size[1])
    batch = np.zeros((len(paths), height, width, 3), dtype=np.uint8)
    mask = np.zeros(len(paths), dtype=bool)

    def load(i: int) -> tuple[int, str | None]:
        try:
            batch[i] = decode_image(paths[i], (width, height))
        except (ValueError, OSError) as exc:
            return i, str(exc) or type(exc).__name__
        except Exception as exc:  # cv2.error and friends: a broken file must not stop the run
            return i, f"{type(exc).__name__}: {exc}".splitlines()[0]
        mask[i] = True
        return i, None

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        failures = [(i, why) for i, why in pool.map(load, range(len(paths))) if why is not None]
    for i, why in failures:
        log.warning("skipping unreadable image %s: %s", os.fspath(paths[i]), why)
    if failures:
        log.warning("%d of %d images unreadable and skipped", len(failures), len(paths))
    return batch, mask
