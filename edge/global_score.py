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

``convert`` maps the distance onto the map's score scale, fitted on the held-out good images:
in logits, their median distance lands on the median of the map's own scores and their 84th
percentile (one spread up) on the map's. So ``anomaly_score = max(map score, mapped distance)``
weighs each part by how far it strays from its own good spread, and one threshold, recalibrated
on that combined score, serves both. The middle of a dozen held-out scores is known where their
tail is not, and the logistic step never saturates, so a good frame never scores 1. (Bundles
made before carry ``mapping = "linear"``: an affine step clipped to [0, 1].) Numpy and OpenCV
only: the same code runs in ``convert`` and on the Pi.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest_anomaly import LOGIT, GlobalSpec

SIDE = 16  # descriptor: the model input area-scaled to SIDE x SIDE x 3
K = 3  # neighbours averaged
MAX_MEMORY = 1000  # good descriptors kept in a bundle at most (about 1.5 MB as float16)
LOGIT_EPS = 1.0 / 512  # map scores kept this far inside (0, 1) before the logit (int8 steps are 1/256)
MIN_LOGIT_SPAN = 0.5  # the map's good spread used at least, in logits (a map that never moves)
SPREAD_QUANTILE = 0.8413  # one standard deviation above the median, were the scores normal


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


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), with ``p`` kept ``LOGIT_EPS`` inside (0, 1)."""
    q = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(q / (1.0 - q))


def sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)), ``x`` held within +-30 (no overflow; still strictly inside (0, 1))."""
    return float(1.0 / (1.0 + np.exp(-min(max(float(x), -30.0), 30.0))))


def fit_mapping(held_distance: np.ndarray, held_local: np.ndarray) -> tuple[float, float]:
    """(scale, offset) of ``sigmoid(offset + scale * distance)``: the held-out good images'
    median distance onto the map scores' median and their one-spread-up quantile onto the map
    scores' own, both in logits."""
    d_mid = float(np.median(held_distance))
    d_hi = float(np.quantile(held_distance, SPREAD_QUANTILE))
    l_logits = logit(held_local)
    l_mid = float(np.median(l_logits))
    span_l = max(float(np.quantile(l_logits, SPREAD_QUANTILE)) - l_mid, MIN_LOGIT_SPAN)
    scale = span_l / max(d_hi - d_mid, 1e-6)
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
        if self.spec.mapping == LOGIT:
            return sigmoid(mapped)
        return float(min(max(mapped, 0.0), 1.0))
