"""The anomaly bundle's global score: "this is not one of the good parts".

The anomaly map finds local flaws (a cut, a loop, a stain) and misses a frame that is wrong as
a whole: another part, a missing component, a wrong colour. The global score covers that with
the k-nearest-neighbour distance (as PatchCore does with its memory bank) of a frame's
descriptor to the descriptors of the good training images, stored in the bundle.

The descriptor is the model input itself, area-scaled to ``side`` x ``side`` x 3 and brought to
zero mean and unit length: it keeps layout and colour and forgets overall brightness and
contrast, which drift on a line during a shift. (The trunk's pooled embeddings were tried
first: on scikit-learn's digits, one digit as the good part, their kNN AUROC was 0.90 against
0.99 for this descriptor; docs/results.md.)

``convert`` maps the distance onto the map's score scale with one affine step, fitted on the
held-out good images (their median and their false-alarm quantile land where the map's own
do), so ``anomaly_score = max(map peak, mapped distance)`` and one threshold, recalibrated on
that combined score, serves both. Numpy and OpenCV only: the same code runs in ``convert``
and on the Pi.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest_anomaly import GlobalSpec

SIDE = 16  # descriptor: the model input area-scaled to SIDE x SIDE x 3
K = 3  # neighbours averaged
MAX_MEMORY = 1000  # good descriptors kept in a bundle at most (about 1.5 MB as float16)
MIN_SPAN = 1.0 / 64  # the map's good spread used at least (a few int8 steps)


def descriptors(images: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(n, side*side*3) float32 descriptors of uint8 RGB model inputs (n, h, w, 3)."""
    import cv2  # here: the runtime imports this module, and a classifier bundle never needs it

    out = np.empty((len(images), side * side * 3), np.float32)
    for i, image in enumerate(images):
        small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
        out[i] = small.reshape(-1)
    out -= out.mean(axis=1, keepdims=True)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
    return out


def knn_distance(query: np.ndarray, memory: np.ndarray, k: int = K) -> np.ndarray:
    """Mean Euclidean distance of each query descriptor to its ``k`` nearest in ``memory``."""
    q = query.astype(np.float32, copy=False)
    m = memory.astype(np.float32, copy=False)
    # unit vectors: |q - m|^2 = 2 - 2 q.m (clipped: rounding can take it a hair below 0)
    d2 = np.clip(2.0 - 2.0 * (q @ m.T), 0.0, None)
    k = min(k, m.shape[0])
    nearest = np.partition(d2, k - 1, axis=1)[:, :k]
    return np.sqrt(nearest).mean(axis=1)


def fit_mapping(
    held_distance: np.ndarray, held_local: np.ndarray, false_alarms: float
) -> tuple[float, float]:
    """(scale, offset) that put the held-out good images' median distance on the map scores'
    median and their (1 - ``false_alarms``) quantile on the map scores' quantile."""
    q = 1.0 - false_alarms
    d_mid, d_hi = float(np.median(held_distance)), float(np.quantile(held_distance, q))
    l_mid, l_hi = float(np.median(held_local)), float(np.quantile(held_local, q))
    span_l = max(l_hi - l_mid, MIN_SPAN)
    span_d = max(d_hi - d_mid, 1e-6)
    scale = span_l / span_d
    return scale, l_mid - scale * d_mid


def pick_memory(train: np.ndarray, seed: int, limit: int = MAX_MEMORY) -> np.ndarray:
    """The good descriptors a bundle keeps: all of them, or ``limit`` picked at random."""
    if len(train) <= limit:
        return train
    keep = np.sort(np.random.default_rng(seed).choice(len(train), size=limit, replace=False))
    return train[keep]


class GlobalScore:
    """The global score of a bundle, loaded once; ``score`` takes a prepared model input."""

    def __init__(self, spec: GlobalSpec, memory: np.ndarray) -> None:
        self.spec = spec
        self._memory = memory.astype(np.float32)

    @classmethod
    def load(cls, bundle_dir: Path, spec: GlobalSpec) -> GlobalScore:
        path = Path(bundle_dir) / spec.memory
        try:
            memory = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"bundle {bundle_dir}: {spec.memory} is unreadable ({exc})") from None
        dims = spec.side * spec.side * 3
        if memory.ndim != 2 or memory.shape[1] != dims or memory.shape[0] < 1:
            raise BundleError(
                f"bundle {bundle_dir}: {spec.memory} has shape {memory.shape}, expected (n, {dims})"
            )
        if not np.isfinite(memory).all():
            raise BundleError(f"bundle {bundle_dir}: {spec.memory} holds values that are not finite")
        return cls(spec, memory)

    def distance(self, rgb: np.ndarray) -> float:
        return float(knn_distance(descriptors(rgb[None], self.spec.side), self._memory, self.spec.k)[0])

    def score(self, rgb: np.ndarray) -> float:
        """The distance on the map's score scale, in [0, 1]."""
        mapped = self.spec.offset + self.spec.scale * self.distance(rgb)
        return float(min(max(mapped, 0.0), 1.0))
