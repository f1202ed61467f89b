"""The anomaly bundle's global score: a frame that is not one of the good parts alarms even
where the map (local flaws) stays dark; lighting drift does not; the bundle's memory is checked
like every other file of it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import ANOMALY_SIZE, bright_patch

from pi_inspect.convert.bundle_writer import record_golden
from pi_inspect.edge.bundle import golden_inputs, read_manifest, write_manifest
from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.global_score import (
    SPREAD_QUANTILE,
    GlobalScore,
    descriptors,
    fit_mapping,
    knn_distance,
    logit,
    pick_memory,
)
from pi_inspect.edge.manifest_anomaly import GlobalSpec
from pi_inspect.edge.runtime import load_classifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def stripes(rng: np.random.Generator, size: int = ANOMALY_SIZE, base: int = 90) -> np.ndarray:
    """A "good part": vertical stripes, a little shifted and noisy from one to the next."""
    x = np.arange(size)
    phase = rng.uniform(0, 2)
    row = base + 40 * (np.sin((x + phase) * 2 * np.pi / 24) > 0)
    img = np.repeat(row[None, :, None], size, axis=0).repeat(3, axis=2).astype(np.float32)
    img += rng.normal(0, 3, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def checkerboard(size: int = ANOMALY_SIZE, base: int = 90) -> np.ndarray:
    """Another part: the same brightness range, another layout."""
    y, x = np.mgrid[:size, :size]
    img = base + 40 * (((x // 24) + (y // 24)) % 2)
    return np.repeat(img[:, :, None], 3, axis=2).astype(np.uint8)


def test_descriptor_forgets_brightness_and_contrast_but_keeps_layout_and_colour():
    rng = np.random.default_rng(0)
    part = stripes(rng)
    brighter = (part.astype(np.float32) * 1.3 + 20).clip(0, 255).astype(np.uint8)
    tinted = part.copy()
    tinted[..., 0] = 200  # a red part where the good ones are grey
    d = descriptors(np.stack([part, brighter, checkerboard(), tinted]))
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    same, other, colour = knn_distance(d[1:], d[:1], k=1)
    assert same < 0.05 < 0.3 < other and colour > 0.3, (same, other, colour)


def test_knn_distance_is_the_mean_distance_to_the_k_nearest():
    rng = np.random.default_rng(1)
    memory = descriptors(rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8))
    query = descriptors(rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))
    brute = np.sqrt(((query[:, None] - memory[None]) ** 2).sum(-1))
    expected = np.sort(brute, axis=1)[:, :3].mean(axis=1)
    assert np.allclose(knn_distance(query, memory, k=3), expected, atol=1e-4)
    assert np.allclose(knn_distance(query, memory[:2], k=3), np.sort(brute[:, :2], 1).mean(1), atol=1e-4)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_mapping_puts_the_good_median_and_spread_where_the_maps_are_in_logits():
    rng = np.random.default_rng(2)
    distance = rng.uniform(0.2, 0.6, 500)
    local = sigmoid(rng.normal(-2.0, 0.8, 500))
    scale, offset = fit_mapping(distance, local)
    mapped = offset + scale * distance  # logits
    assert np.median(mapped) == pytest.approx(np.median(logit(local)), abs=1e-9)
    assert np.quantile(mapped, SPREAD_QUANTILE) == pytest.approx(
        np.quantile(logit(local), SPREAD_QUANTILE), abs=1e-9
    )
    flat_scale, _ = fit_mapping(distance, np.full(500, 0.1))  # a map that never moves
    assert flat_scale > 0


def test_a_steep_mapping_never_puts_a_good_frame_at_the_top_of_the_scale():
    rng = np.random.default_rng(5)
    held_distance = rng.normal(0.3, 0.001, 20)  # good frames all alike: a very steep mapping
    held_local = sigmoid(rng.normal(-1.0, 1.5, 20))
    scale, offset = fit_mapping(held_distance, held_local)
    spec = GlobalSpec("global_memory.npy", 16, 3, scale, offset, "logit")
    memory = descriptors(np.stack([stripes(rng) for _ in range(10)]))
    scorer = GlobalScore(spec, memory)
    far = scorer.score(checkerboard())
    assert 0.5 < far < 1.0  # far away, yet still ranked against a farther one
    linear = GlobalScore(GlobalSpec("global_memory.npy", 16, 3, scale, -scale * 0.3, "linear"), memory)
    assert linear.score(checkerboard()) == 1.0  # what the clipped step of older bundles did


def test_memory_keeps_every_good_image_up_to_its_limit():
    many = np.arange(50, dtype=np.float32)[:, None]
    assert len(pick_memory(many, seed=0, limit=100)) == 50
    kept = pick_memory(many, seed=0, limit=10)
    assert len(kept) == 10 and len(np.unique(kept)) == 10


def add_global(
    bundle: Path, good: np.ndarray, scale: float = 1.0, offset: float = 0.0, mapping: str | None = None
) -> None:
    """Give the tiny anomaly bundle a global score whose memory is ``good``, as convert does
    (without ``mapping``: as bundles made before the logistic mapping were)."""
    buffer = io.BytesIO()
    np.save(buffer, descriptors(good).astype(np.float16), allow_pickle=False)
    (bundle / "global_memory.npy").write_bytes(buffer.getvalue())
    data = json.loads((bundle / "manifest.json").read_text())
    data["files"]["global_memory.npy"] = ""
    data.setdefault("anomaly", {})["global"] = {
        "memory": "global_memory.npy", "side": 16, "k": 3, "scale": scale, "offset": offset,
    }
    if mapping is not None:
        data["anomaly"]["global"]["mapping"] = mapping
    write_manifest(bundle, data)
    record_golden(bundle, golden_inputs(bundle, read_manifest(bundle)))  # convert scores it whole


@pytest.mark.parametrize("mapping", ["logit", None])
def test_another_part_alarms_through_the_global_score_where_the_map_stays_dark(anomaly_bundle, mapping):
    rng = np.random.default_rng(3)
    good = np.stack([stripes(rng) for _ in range(30)])
    if mapping == "logit":  # a good frame's distance near the map's low logits, another part's far
        add_global(anomaly_bundle, good, scale=40.0, offset=-8.0, mapping="logit")
    else:  # a bundle made before: the clipped linear step
        add_global(anomaly_bundle, good, scale=2.0)
    with load_classifier(anomaly_bundle) as clf:  # the golden set still matches
        threshold = clf.thresholds["anomaly"]
        good = [clf.predict(stripes(rng)) for _ in range(5)]
        other = clf.predict(checkerboard())
        flaw = clf.predict(bright_patch(at=(3, 4)))
    assert all(p.scores[0] < threshold for p in good)
    assert other.features.max() < 0.05  # the map sees no flaw ...
    assert other.scores[0] > threshold  # ... the global score sees another part
    assert flaw.scores[0] > 0.95 and flaw.features.max() > 0.95  # local flaws still alarm


def test_a_bundle_whose_memory_was_changed_or_is_malformed_is_refused(anomaly_bundle, tmp_path):
    rng = np.random.default_rng(4)
    add_global(anomaly_bundle, np.stack([stripes(rng) for _ in range(4)]))
    memory = anomaly_bundle / "global_memory.npy"
    memory.write_bytes(memory.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(BundleError, match="global_memory.npy sha256"):
        load_classifier(anomaly_bundle)
    np.save(memory, np.zeros((4, 10), np.float16), allow_pickle=False)  # the wrong width
    data = json.loads((anomaly_bundle / "manifest.json").read_text())
    write_manifest(anomaly_bundle, data)
    with pytest.raises(BundleError, match=r"has shape \(4, 10\), expected \(n, 768\)"):
        load_classifier(anomaly_bundle)
    data["anomaly"]["global"]["memory"] = "elsewhere.npy"
    (anomaly_bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="anomaly.global.memory 'elsewhere.npy' has no sha256"):
        load_classifier(anomaly_bundle)
    data["anomaly"]["global"] = {**data["anomaly"]["global"], "memory": "global_memory.npy", "scale": -1}
    (anomaly_bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="scale must be a number > 0"):
        load_classifier(anomaly_bundle)
    data["anomaly"]["global"] = {**data["anomaly"]["global"], "scale": 1.0, "mapping": "cubic"}
    (anomaly_bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="mapping must be one of linear, logit"):
        load_classifier(anomaly_bundle)
