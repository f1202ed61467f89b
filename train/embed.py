"""The headless model as a feature extractor (seed 003): embeddings, nearest images, top-5 precision.

The embedding is the ``gap`` output (global average of the ``features`` map), L2-normalised so
cosine similarity is a dot product.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pi_inspect.edge.errors import DataError


def headless(model):
    """The model cut after global average pooling: image -> feature vector."""
    import keras

    return keras.Model(model.inputs, model.get_layer("gap").output)


def embed_images(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """L2-normalised (n, d) float32 embeddings of uint8 (n, h, w, 3) images."""
    vectors = np.asarray(
        headless(model).predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest(
    index: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the ``k`` nearest index rows for each query row.

    ``exclude_self`` drops row i from query i's neighbours (queries are the index itself).
    """
    sims = np.asarray(queries, dtype=np.float32) @ np.asarray(index, dtype=np.float32).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    k = min(k, sims.shape[1] - (1 if exclude_self else 0))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def top_k_precision(y: np.ndarray, neighbours: np.ndarray, multilabel: bool) -> dict[str, float]:
    """Seed 003's top-5 precision: share of neighbours with the query's label.

    ``exact``: the neighbour's whole label vector equals the query's (seed 003's single label).
    ``shared`` (multi-label only): the neighbour shares at least one positive label, or both have
    none (seed 003's modified precision).
    """
    y = np.asarray(y) > 0.5
    same = np.all(y[neighbours] == y[:, None, :], axis=2)
    result = {"exact": float(same.mean()) if same.size else 0.0}
    if multilabel:
        overlap = np.any(y[neighbours] & y[:, None, :], axis=2)
        both_empty = (~y.any(axis=1))[:, None] & ~np.any(y[neighbours], axis=2)
        shared = overlap | both_empty
        result["shared"] = float(shared.mean()) if shared.size else 0.0
    return result


def save_index(path: str | os.PathLike, paths: list[str], vectors: np.ndarray, run: str) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, paths=np.asarray(paths), embeddings=vectors, run=np.asarray(run))
    return target if target.suffix == ".npz" else target.with_suffix(target.suffix + ".npz")


def load_index(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return [str(p) for p in data["paths"]], np.asarray(data["embeddings"], dtype=np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not an embedding index ({exc})") from exc
