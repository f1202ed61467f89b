"""The anomaly model's pieces that need no training: pseudo-defects, the threshold, AUROC,
good-only rendering and the demo's anomaly ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from pi_inspect.edge.demo import Occurrence, as_anomaly


def _good_images(n: int = 6, size: int = 48) -> np.ndarray:
    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.synth.still import is_good, render_still

    goods = [i for i in range(60) if is_good(5, i)][:n]
    return np.stack([prepare(render_still(5, i, (size, size)).image, (size, size)) for i in goods])


def test_pseudo_defects_mark_only_pixels_they_visibly_changed():
    from pi_inspect.train.anomaly.pseudo import CHANGED, KINDS, PseudoConfig, add_pseudo_defect

    images = _good_images()
    rng = np.random.default_rng(3)
    marked = dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        for i in range(len(images)):
            out, mask = add_pseudo_defect(images[i], images[-1 - i], rng, PseudoConfig(kinds=(kind,)))
            diff = np.abs(out.astype(int) - images[i].astype(int)).max(axis=2)
            assert mask.shape == images[i].shape[:2]
            marked[kind] += int(mask.sum())
            # every marked pixel lies within 1 px of a changed one (the mask is dilated once)
            near = np.zeros_like(mask)
            ys, xs = np.nonzero(diff >= CHANGED)
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    near[np.clip(ys + dy, 0, 47), np.clip(xs + dx, 0, 47)] = True
            assert not (mask & ~near).any(), kind
    assert all(marked.values()), marked  # every kind marks something over a few images


def test_pseudo_batches_are_reproducible_from_their_seed_and_flaw_about_the_asked_share():
    from pi_inspect.train.anomaly.pseudo import make_batch

    images = np.repeat(_good_images(), 20, axis=0)
    a, ma = make_batch(images, np.random.default_rng(7), (6, 6), 0.5)
    b, mb = make_batch(images, np.random.default_rng(7), (6, 6), 0.5)
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert ma.shape == (len(images), 6, 6) and ma.min() >= 0 and ma.max() <= 1
    flawed = (a != images).any(axis=(1, 2, 3)).mean()
    assert 0.3 < flawed < 0.7
    clean = ~(a != images).any(axis=(1, 2, 3))
    assert (ma[clean] == 0).all()  # an untouched image has an empty target


def test_stretch_changes_the_period_along_a_line_and_not_its_width():
    """A dashed line stretched along itself: the dashes get longer, the line stays as thick."""
    import cv2

    from pi_inspect.train.anomaly.pseudo import line_direction

    img = np.full((64, 64, 3), 200, np.uint8)
    for x in range(0, 64, 6):  # dashes 3 px long, 3 px apart, 3 px thick, along y = 32
        img[31:34, x : x + 3] = 40
    assert abs(np.sin(line_direction(img, 16, 16, 32, 32))) < 0.05  # runs along x
    assert abs(np.cos(line_direction(np.ascontiguousarray(np.rot90(img)), 16, 16, 32, 32))) < 0.05

    from pi_inspect.train.anomaly.pseudo import PseudoConfig, add_pseudo_defect

    stretched = 0
    for seed in range(12):
        out, mask = add_pseudo_defect(img, img, np.random.default_rng(seed), PseudoConfig(kinds=("stretch",)))
        dark = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY) < 120
        rows = np.flatnonzero(dark.any(axis=1))
        assert rows.min() >= 30 and rows.max() <= 34  # the line keeps its place and width
        runs = np.diff(np.flatnonzero(np.diff(dark[32].astype(np.int8)) != 0))
        stretched += int(runs.max() > 4)  # some dash or gap longer than any in the original
    assert stretched >= 6


def test_threshold_lets_at_most_the_target_share_of_good_scores_above_it():
    from pi_inspect.train.anomaly.threshold import calibrate

    scores = np.random.default_rng(0).random(1000)
    for target in (0.001, 0.005, 0.01, 0.1):
        t = calibrate(scores, target)
        assert (scores > t).mean() <= target
        assert (scores >= t).mean() > target - 1 / 1000  # and no higher than it needs to be


def test_few_held_out_images_set_a_threshold_that_keeps_the_target_for_95_percent_of_held_out_sets():
    from statistics import NormalDist

    from pi_inspect.train.anomaly.threshold import calibrate

    rng = np.random.default_rng(7)
    target, n = 0.005, 45  # 0.5 % of 45 is less than one image: no quantile to read off
    above_bound, above_max = [], []
    for _ in range(400):  # good scores whose logits are normal, mean -1.3 and spread 0.8
        held = 1.0 / (1.0 + np.exp(-rng.normal(-1.3, 0.8, n)))
        t = calibrate(held, target)
        assert t >= held.max()
        share = lambda s: 1.0 - NormalDist(-1.3, 0.8).cdf(float(np.log(s / (1.0 - s))))  # noqa: E731
        above_bound.append(share(t))
        above_max.append(share(held.max()))
    # the highest of 45 lets about 1 / 46 of good frames alarm, over the target for most sets;
    # the tolerance bound keeps the target for 95 % of them (0.93-0.97 in 400 draws)
    assert np.mean(above_max) > 3 * target and np.mean(np.array(above_max) <= target) < 0.2
    assert 0.93 <= np.mean(np.array(above_bound) <= target) <= 0.97


def test_tolerance_factor_matches_the_noncentral_t_values():
    from pi_inspect.train.anomaly.threshold import tolerance_factor

    # k = nct.ppf(0.95, n - 1, z(share) * sqrt(n)) / sqrt(n), from scipy
    for share, n, exact in ((0.995, 45, 3.1952), (0.995, 20, 3.6280), (0.995, 10, 4.3784),
                            (0.99, 100, 2.6840), (0.95, 5, 4.2027), (0.995, 199, 2.8397)):
        assert tolerance_factor(share, n) == pytest.approx(exact, rel=0.013)


def test_auroc_counts_ties_half_and_matches_pairwise_definition():
    from pi_inspect.train.metrics import auroc

    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200) + y * 0.3, 1)  # coarse scores: many ties
    pos, neg = s[y], s[~y]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg)
    )
    assert auroc(y, s) == pytest.approx(pairwise)
    assert np.isnan(auroc(np.zeros(5, bool), np.arange(5)))


def test_good_only_rendering_keeps_the_full_sets_names_and_images(tmp_path):
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.edge.synth.dataset import generate_dataset

    full = generate_dataset(tmp_path / "full", 24, seed=9, size=(32, 32), workers=1)
    expected = [r.name for r in full.rows if r.labels["good"]]
    count = len(expected)
    good = generate_dataset(tmp_path / "good", count, seed=9, size=(32, 32), workers=1, good_only=True)
    assert [r.name for r in good.rows] == expected and expected
    for name in expected:
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "good" / name).read_bytes()
    assert read_dataset(tmp_path / "good").y[:, 0].all()


def test_demo_ground_truth_for_an_anomaly_model_is_every_defect_as_one_kind():
    truth = [
        Occurrence("error", 10, 20),
        Occurrence("length", 50, 90),
        Occurrence("break", 85, 100),
        Occurrence("break", 200, 210),
    ]
    assert as_anomaly(truth) == [
        Occurrence("anomaly", 10, 20),
        Occurrence("anomaly", 50, 100),
        Occurrence("anomaly", 200, 210),
    ]


def test_pointing_counts_a_peak_on_another_defect_only_in_the_class_agnostic_game():
    """An image with a break and a loop whose map peaks on the loop: a miss for 'break' in the
    per-kind game, a hit in the class-agnostic one; on a break-only image both agree."""
    from pathlib import Path

    from pi_inspect.train.anomaly.evaluate import pointing

    peak_left = np.zeros((4, 4), np.float32)
    peak_left[1, 0] = 1.0  # centre of that cell: (12, 36) px at 96 px
    paths = [Path("a.png"), Path("b.png")]
    boxes = {
        ("a.png", "break"): [(60.0, 0.0, 95.0, 30.0)],  # the break, far from the peak
        ("a.png", "error"): [(0.0, 24.0, 30.0, 48.0)],  # the loop, under the peak
        ("b.png", "break"): [(60.0, 0.0, 95.0, 30.0)],
    }
    maps = np.stack([peak_left, peak_left])
    args = (maps, paths, boxes, [(96, 96)] * 2, (96, 96), ["break", "error"])
    assert pointing(*args)["break"] == {"score": 0.0, "trials": 2}
    assert pointing(*args, any_kind=True)["break"] == {"score": 0.5, "trials": 2}
    assert pointing(*args, any_kind=True)["error"] == {"score": 1.0, "trials": 1}
