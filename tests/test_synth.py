"""The synthetic seam generator: deterministic, balanced, consistent, learnable, not trivial."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.synth.dataset import generate_dataset
from pi_inspect.edge.synth.geometry import SeamCurve, loop_stroke
from pi_inspect.edge.synth.look import TEXTURE_UNDER_THREAD, Look, luminance, texture_swing
from pi_inspect.edge.synth.still import (
    LABELS,
    MIN_REGULAR_IN_VIEW,
    PITCH_MM,
    break_span,
    render_still,
)
from pi_inspect.edge.synth.video import read_video_truth, render_video, sidecar_paths

PROBE_SIZE = (48, 48)  # rendered size; the probe sees it as 32x32 grey
PROBE_TRAIN, PROBE_TEST = 1500, 500


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def samples():
    """2000 small stills of one seed, rendered once for every statistical test here."""
    cv2.setNumThreads(1)
    return [render_still(11, i, PROBE_SIZE) for i in range(PROBE_TRAIN + PROBE_TEST)]


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
    a = generate_dataset(tmp_path / "a", 6, seed=3, size=(64, 64), workers=1, chunk=2)
    b = generate_dataset(tmp_path / "b", 6, seed=3, size=(64, 64), workers=2, chunk=4)
    assert _digest(a.root) == _digest(b.root)
    assert len(_digest(a.root)) == 6 + 3  # images, labels.csv, boxes.csv, dataset.toml


def test_different_seed_gives_different_images(tmp_path):
    a = _digest(generate_dataset(tmp_path / "a", 3, seed=3, size=(64, 64), workers=1).root)
    b = _digest(generate_dataset(tmp_path / "b", 3, seed=4, size=(64, 64), workers=1).root)
    for name in ("images/000000.png", "images/000001.png", "images/000002.png"):
        assert a[name] != b[name]


def test_labels_csv_is_the_seed_lookup_table_and_boxes_csv_names_real_images(tmp_path):
    summary = generate_dataset(tmp_path, 12, seed=5, size=(64, 48), workers=1)
    with open(tmp_path / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["name", "good", "error", "break", "length"]
    assert len(rows) == 13
    for name, *values in rows[1:]:
        assert set(values) <= {"True", "False"}
        img = cv2.imread(str(tmp_path / name))
        assert img is not None and img.shape == (48, 64, 3)
    with open(tmp_path / "boxes.csv", newline="") as f:
        boxes = list(csv.DictReader(f))
    assert list(boxes[0]) == ["name", "label", "x0", "y0", "x1", "y1"]
    expected = sum(r.labels["error"] + r.labels["break"] for r in summary.rows)
    assert len(boxes) == expected
    assert {b["name"] for b in boxes} <= {r[0] for r in rows[1:]}


def test_labels_csv_reads_back_with_the_data_set_reader(tmp_path):
    from pi_inspect.edge.data.table import read_table

    summary = generate_dataset(tmp_path, 5, seed=6, size=(48, 48), workers=1)
    data = read_table(tmp_path / "labels.csv")
    assert list(data.labels) == list(LABELS)
    assert [Path(p).name for p in data.paths] == [Path(r.name).name for r in summary.rows]
    expected = [[r.labels[k] for k in LABELS] for r in summary.rows]
    assert np.array_equal(data.y.astype(bool), np.array(expected))


def test_each_attribute_is_true_in_20_to_80_percent_of_images(samples):
    first = samples[:200]
    for label in LABELS:
        share = np.mean([s.labels[label] for s in first])
        assert 0.2 <= share <= 0.8, (label, share)


def test_good_means_no_error_no_break_and_2mm_pitch(samples):
    for s in samples:
        lab = s.labels
        assert lab["good"] == (not lab["error"] and not lab["break"] and lab["length"])


def test_boxes_are_inside_the_image_and_present_exactly_for_errors_and_breaks(samples):
    w, h = PROBE_SIZE
    for s in samples:
        kinds = sorted(b.label for b in s.boxes)
        assert kinds == sorted(k for k in ("error", "break") if s.labels[k])
        for b in s.boxes:
            assert 0 <= b.x0 < b.x1 <= w - 1 and 0 <= b.y0 < b.y1 <= h - 1


def test_4mm_stitches_are_at_least_1_6x_longer_than_2mm_stitches_in_pixels(samples):
    # pixel pitch scales with the output size, so the ratio holds at 96 px as at 48 px
    short = [s.pitch_px for s in samples if s.labels["length"]]
    long_ = [s.pitch_px for s in samples if not s.labels["length"]]
    ratio = min(p[0] for p in long_) / max(p[1] for p in short)
    assert ratio >= 1.6, ratio


def test_every_still_shows_at_least_three_intact_stitches_so_its_pitch_can_be_read(samples):
    assert min(s.regular_in_view for s in samples) >= MIN_REGULAR_IN_VIEW == 3
    # the rule bites where it should: a 4 mm seam with a cut and a loop sits right at it
    hard = [
        s for s in samples if s.labels["error"] and s.labels["break"] and not s.labels["length"]
    ]
    assert hard and min(s.regular_in_view for s in hard) == MIN_REGULAR_IN_VIEW


def test_the_weave_never_swings_more_than_the_thread_stands_out():
    rng = np.random.default_rng(5)
    capped = 0
    for _ in range(2000):
        look = Look.sample(rng)
        lf = luminance(look.fabric_rgb)
        swing = texture_swing(look.fabric_rgb, look.fabric_rgb2, look.weave_contrast, look.yarn_var)
        limit = TEXTURE_UNDER_THREAD * abs(luminance(look.thread_rgb) - lf)
        assert swing <= limit + 1e-9
        capped += swing >= limit - 1e-9
    assert 0.05 < capped / 2000 < 0.5  # a real constraint on some looks, not on most


def test_a_break_always_removes_two_or_more_stitches_and_more_than_the_largest_pitch():
    rng = np.random.default_rng(0)
    for pitch in PITCH_MM.values():
        for _ in range(500):
            span = break_span(rng, pitch)
            assert span >= 2 and span * pitch >= 1.8 * max(PITCH_MM.values())


def test_an_error_loop_reaches_well_off_the_seam_line():
    rng = np.random.default_rng(1)
    curve = SeamCurve()  # the straight line v = 0
    for _ in range(300):
        thread = rng.uniform(0.35, 0.6)
        stroke, _outline = loop_stroke(curve, 0.0, float(rng.choice([2.0, 4.0])), thread, rng)
        reach = np.abs(stroke.points[:, 1]).max()
        assert reach >= 2.0 - 1e-9 and reach >= 3 * thread, reach


def _grey32(samples) -> np.ndarray:
    return np.array(
        [
            cv2.resize(
                cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), (32, 32), interpolation=cv2.INTER_AREA
            ).ravel()
            / 255.0
            for s in samples
        ]
    )


def _linear_probe_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Best held-out accuracy of ridge least squares on standardised pixels over a few lambdas.

    Taking the best lambda on the test split flatters the probe: that makes the bound strict.
    """
    xtr, xte = x[:PROBE_TRAIN], x[PROBE_TRAIN:]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a = np.hstack([(xtr - mu) / sd, np.ones((len(xtr), 1))])
    b = np.hstack([(xte - mu) / sd, np.ones((len(xte), 1))])
    target = np.where(y[:PROBE_TRAIN], 1.0, -1.0)
    gram, rhs = a.T @ a, a.T @ target
    best = 0.0
    for lam in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0):
        w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
        best = max(best, float(np.mean((b @ w > 0) == y[PROBE_TRAIN:])))
    return best


def test_a_linear_probe_on_32px_grey_pixels_cannot_find_errors_or_breaks(samples):
    x = _grey32(samples)
    for label in ("error", "break"):
        y = np.array([s.labels[label] for s in samples])
        assert _linear_probe_accuracy(x, y) < 0.85, label


def test_the_linear_probe_does_find_a_trivially_separable_control(samples):
    # the same images, but every error image carries a faint fixed-position bright patch: a
    # label leak of the kind a careless generator makes; the probe must catch it
    x = _grey32(samples).reshape(-1, 32, 32)
    y = np.array([s.labels["error"] for s in samples])
    x[y, 2:8, 2:8] += 0.2
    assert _linear_probe_accuracy(x.reshape(len(x), -1), y) > 0.95


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    cv2.setNumThreads(1)
    path = tmp_path_factory.mktemp("video") / "seam.mp4"
    return render_video(path, frames=300, seed=2, size=(160, 120), fps=15)


def test_video_is_identical_for_the_same_seed(tmp_path):
    a = render_video(tmp_path / "a.mp4", frames=30, seed=4, size=(96, 72))
    b = render_video(tmp_path / "b.mp4", frames=30, seed=4, size=(96, 72))
    assert np.array_equal(a.labels, b.labels) and a.occurrences == b.occurrences
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_video_has_the_asked_frames_and_opencv_decodes_them(video):
    cap = cv2.VideoCapture(str(video.path))
    assert cap.isOpened()
    decoded = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        decoded += 1
    cap.release()
    assert decoded == 300 == video.frames


def test_video_sidecars_read_back_equal_to_the_returned_truth(video):
    for p in sidecar_paths(video.path):
        assert p.is_file()
    back = read_video_truth(video.path)
    assert np.array_equal(back.labels, video.labels)
    assert back.occurrences == video.occurrences
    assert back.size == (160, 120) and back.fps == pytest.approx(15)


def test_video_occurrences_match_the_per_frame_truth(video):
    column = {"error": 1, "break": 2}
    seen = {o.label for o in video.occurrences}
    assert {"error", "break", "length"} <= seen
    for label, col in (*column.items(), ("length", 3)):
        flags = np.zeros(video.frames, bool)
        for o in video.occurrences:
            if o.label == label:
                flags[o.first_frame : o.last_frame + 1] = True
        truth = ~video.labels[:, col] if label == "length" else video.labels[:, col]
        assert np.array_equal(flags, truth), label
    good = video.labels[:, 0]
    assert np.array_equal(good, ~video.labels[:, 1] & ~video.labels[:, 2] & video.labels[:, 3])


def test_video_defects_stay_in_view_for_a_run_of_frames_and_are_separated(video):
    occ = sorted(video.occurrences, key=lambda o: o.first_frame)
    for o in occ:
        if o.label in ("error", "break"):
            assert 10 <= o.last_frame - o.first_frame + 1 <= 40, o
    for a, b in zip(occ, occ[1:], strict=False):
        assert b.first_frame > a.last_frame, (a, b)


def test_synth_command_writes_a_data_set_and_a_contact_sheet(tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code = main(
        [
            "synth",
            "--out",
            str(tmp_path / "d"),
            "--count",
            "3",
            "--size",
            "48x48",
            "--workers",
            "1",
            "--contact-sheet",
            str(sheet),
        ]
    )
    assert code == 0
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 3
    assert cv2.imread(str(sheet)) is not None
    assert "wrote 3 images" in capsys.readouterr().out


def test_good_only_writes_exactly_count_good_stills_the_same_for_a_seed(tmp_path, capsys):
    def good_only(name: str, count: int) -> Path:
        out = tmp_path / name
        argv = ["synth", "--out", str(out), "--count", str(count), "--seed", "3", "--good-only",
                "--size", "16x16", "--workers", "1"]
        assert main(argv) == 0
        return out

    first, again, fewer = good_only("a", 40), good_only("b", 40), good_only("c", 12)
    assert "wrote 40 images" in capsys.readouterr().out
    with open(first / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and all(row["good"] == "True" for row in rows)
    assert len(list((first / "images").glob("*.png"))) == 40
    assert _digest(first) == _digest(again)  # deterministic by seed
    names = [row["name"] for row in rows]
    with open(fewer / "labels.csv", newline="") as fh:
        assert [row["name"] for row in csv.DictReader(fh)] == names[:12]  # the seed's first goods


def test_synth_command_with_nothing_to_do_fails_in_one_line(capsys):
    assert main(["synth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to do" in err[0]


def test_fabric_for_a_strip_longer_than_opencv_remap_allows_is_rendered_in_slices():
    """A long video at camera resolution needs a canvas wider than cv2.remap's SHRT_MAX."""
    import numpy as np

    from pi_inspect.edge.synth.look import Look, fabric_texture

    rng = np.random.default_rng(0)
    look = Look.sample(rng)
    strip = fabric_texture(look, (0.0, 0.0), 8.0, (4, 40_000), np.random.default_rng(1))
    assert strip.shape == (4, 40_000, 3)
    assert np.isfinite(strip).all() and strip[:, 20_000:].std() > 0
