"""One recording split in time blocks: a gap at every cut, the asked fractions, frame order from
the frame index, held-out blocks spread over the recording."""

from __future__ import annotations

import logging
from itertools import product
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.data.blocks import BLOCKS, default_gap, one_recording
from pi_inspect.edge.data.split import split_dataset, write_split
from pi_inspect.edge.data.table import SEED_LABELS, Dataset, read_table, write_table
from pi_inspect.edge.errors import DataError


def _recording(frames: int = 450, every: int = 1, seed: int = 0, stem: str = "line") -> Dataset:
    """One video's labelled frames as the labelling tool names them (``line_5.png``, unpadded),
    rows in a shuffled order; defects come in runs of frames, as on a line."""
    rng = np.random.default_rng(seed)
    index = np.arange(frames) * every
    runs = np.zeros((frames, 4), bool)
    for k in range(1, 4):
        for start in rng.integers(0, frames, size=4):
            runs[start : start + 12, k] = True
    runs[:, 0] = ~runs[:, 1:].any(axis=1)
    order = rng.permutation(frames)
    paths = [Path(f"/data/{stem}_{index[i]}.png") for i in order]
    return Dataset(paths, runs[order].astype(np.float32), SEED_LABELS, "multilabel",
                   [stem] * frames)


def _frames(ds: Dataset, rows: np.ndarray) -> np.ndarray:
    return np.array([int(ds.paths[i].stem.rsplit("_", 1)[1]) for i in rows], dtype=np.int64)


@pytest.mark.parametrize(("every", "gap", "fractions"), [
    (1, None, (0.15, 0.0)), (5, None, (0.2, 0.1)), (5, 22, (0.15, 0.0)), (2, 0, (0.3, 0.2)),
])  # fmt: skip
def test_no_frame_within_the_gap_sits_on_two_sides_of_a_cut(every, gap, fractions):
    ds = _recording(frames=300, every=every)
    parts = split_dataset(ds, valid=fractions[0], test=fractions[1], seed=2, by="time", gap=gap)
    allowed = default_gap(_frames(ds, np.arange(len(ds)))) if gap is None else gap
    assert allowed == (3 * every if gap is None else gap)
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        left, right = _frames(ds, parts[a]), _frames(ds, parts[b])
        for x, y in product(left.tolist(), right.tolist()):
            assert abs(x - y) > allowed, (a, x, b, y)
    assert len(parts["valid"]) and len(parts["train"])


def test_time_split_fractions_are_near_those_asked():
    ds = _recording(frames=450)
    n = len(ds)
    for valid, test in ((0.15, 0.0), (0.2, 0.1), (0.1, 0.1)):
        parts = split_dataset(ds, valid=valid, test=test, seed=0, by="time")
        assert abs(len(parts["valid"]) / n - valid) <= 0.01
        assert abs(len(parts["test"]) / n - test) <= 0.01
        left_out = n - sum(len(p) for p in parts.values())
        assert left_out <= 2 * BLOCKS * 2 * 3  # two cuts per held-out block, 3 frames each
        assert len(parts["train"]) == n - len(parts["valid"]) - len(parts["test"]) - left_out


def test_blocks_follow_the_frame_index_not_the_file_name_order():
    """``line_9.png`` comes before ``line_10.png``: a name sort would mix the blocks up."""
    ds = _recording(frames=200)
    assert sorted(p.name for p in ds.paths)[:3] == ["line_0.png", "line_1.png", "line_10.png"]
    parts = split_dataset(ds, valid=0.15, test=0.0, seed=1, by="time")
    valid = np.sort(_frames(ds, parts["valid"]))
    runs = 1 + int((np.diff(valid) > 1).sum())  # runs of consecutive frames
    assert 1 <= runs <= BLOCKS


def test_valid_blocks_are_spread_over_the_whole_recording():
    ds = _recording(frames=450)
    parts = split_dataset(ds, valid=0.15, test=0.0, seed=0, by="time")
    thirds = set((_frames(ds, parts["valid"]) * 3 // 450).tolist())
    assert thirds == {0, 1, 2}  # early, middle and late light and line all in valid


def test_time_split_is_reproducible_for_a_seed_and_varies_with_it():
    ds = _recording(frames=300)
    a = split_dataset(ds, seed=4, by="time")
    b = split_dataset(ds, seed=4, by="time")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    others = [split_dataset(ds, seed=s, by="time") for s in range(5, 9)]
    assert any(not np.array_equal(a["valid"], o["valid"]) for o in others)


def test_each_recording_of_several_is_cut_in_time_on_its_own():
    first, second = _recording(frames=100, stem="am"), _recording(frames=100, stem="pm", seed=1)
    ds = Dataset(first.paths + second.paths, np.concatenate([first.y, second.y]), SEED_LABELS,
                 "multilabel", first.sources + second.sources)
    parts = split_dataset(ds, valid=0.2, test=0.0, seed=0, by="time")
    for stem in ("am", "pm"):
        in_valid = sum(ds.sources[i] == stem for i in parts["valid"])
        assert in_valid == 20  # its share of each recording


def test_a_valid_split_without_a_positive_of_a_label_is_warned_about(tmp_path, caplog):
    ds = _recording(frames=120)
    ds.y[:, 2] = 0.0
    ds.y[np.argmax([p.name == "line_60.png" for p in ds.paths]), 2] = 1.0  # one break frame
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.data.split"):
        write_split(ds, tmp_path, valid=0.15, test=0.0, seed=0, by="time")
    valid = read_table(tmp_path / "valid.csv")
    assert not valid.y[:, 2].any()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["valid: no positive of break (1 in all); its scores go unchecked there"]


def test_time_split_needs_frame_indices_in_the_names():
    ds = Dataset([Path("/d/a.png"), Path("/d/b.png")], np.zeros((2, 4), np.float32), SEED_LABELS,
                 "multilabel", ["a.png", "b.png"])
    assert not one_recording(ds)
    with pytest.raises(DataError, match="a.png: no frame index"):
        split_dataset(ds, by="time")
    with pytest.raises(DataError, match="unknown split mode"):
        split_dataset(ds, by="frames")


def _labelled_folder(root: Path, frames: int, every: int) -> Path:
    ds = _recording(frames=frames, every=every)
    root.mkdir(parents=True)
    for path in ds.paths:
        cv2.imwrite(str(root / path.name), np.zeros((8, 8, 3), np.uint8))
    write_table(root / "labels.csv", [p.name for p in ds.paths], SEED_LABELS, ds.y, ds.sources)
    return root


def test_split_command_by_time_writes_tables_and_names_the_gap(tmp_path, capsys):
    data = _labelled_folder(tmp_path / "labelled", frames=90, every=5)
    assert one_recording(read_table(data / "labels.csv"))
    out = tmp_path / "split"
    argv = ["split", str(data), "--out", str(out), "--valid", "0.2", "--test", "0.1", "--by", "time"]
    assert main(argv) == 0
    report = capsys.readouterr().out
    parts = {name: read_table(out / f"{name}.csv") for name in ("train", "valid", "test")}
    left_out = 90 - sum(len(p) for p in parts.values())
    assert f"time blocks: 1 recording(s), gap 15 frames; {left_out} images" in report
    assert len(parts["valid"]) == 18 and len(parts["test"]) == 9


def test_gap_or_blocks_without_split_by_time_is_refused_in_one_line(tmp_path, capsys):
    data = _labelled_folder(tmp_path / "labelled", frames=12, every=1)
    assert main(["split", str(data), "--out", str(tmp_path / "s"), "--gap", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--by time" in err[0]
    assert not (tmp_path / "s").exists()
