"""Data set readers: lookup tables, class folders, frames from video, loading and the split."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.data.frames import extract_frames
from pi_inspect.edge.data.images import load_images
from pi_inspect.edge.data.split import split_dataset, write_split
from pi_inspect.edge.data.table import (
    SEED_LABELS,
    Dataset,
    read_class_folders,
    read_dataset,
    read_table,
    source_from_name,
    upsert_row,
    write_table,
)
from pi_inspect.edge.errors import DataError, SourceError


def _png(path: Path, value: int = 128, size: tuple[int, int] = (16, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size[1], size[0], 3), value, np.uint8)
    img[0, 0] = (255, 0, 0)  # blue in BGR: lets a test check the RGB conversion
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path


def _video(path: Path, frames: int = 20, fourcc: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 48))
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write {fourcc} here")
    for i in range(frames):
        img = np.full((48, 64, 3), (i * 12) % 256, np.uint8)
        cv2.putText(img, str(i), (5, 35), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(img)
    writer.release()
    return path


# --- lookup table -------------------------------------------------------------------------


def test_seed_table_with_pandas_index_column_reads_multi_hot(tmp_path):
    _png(tmp_path / "pics" / "vid_a_0.png")
    _png(tmp_path / "pics" / "vid_a_1.png")
    other = _png(tmp_path / "elsewhere" / "x.png").absolute()
    (tmp_path / "pics" / "data.csv").write_text(
        ",name,good,error,break,length\n"
        "0,vid_a_0.png,True,False,False,True\n"
        "1,vid_a_1.png,false,1,YES,0\n"
        f"2,{other},False,False,False,False\n"
    )
    ds = read_table(tmp_path / "pics" / "data.csv")
    assert ds.labels == SEED_LABELS
    assert ds.task == "multilabel"
    assert ds.paths[0] == (tmp_path / "pics" / "vid_a_0.png").absolute()
    assert ds.paths[2] == other
    assert all(p.is_absolute() and p.is_file() for p in ds.paths)
    assert ds.y.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [[1, 0, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0]])
    assert ds.sources == ["vid_a", "vid_a", str(other)]


def test_source_column_overrides_the_name_derived_group(tmp_path):
    (tmp_path / "t.csv").write_text(
        "name,scratch,dent,source\na.png,True,False,line1\nb_3.png,0,1,\n"
    )
    ds = read_table(tmp_path / "t.csv")
    assert ds.labels == ("scratch", "dent")
    assert ds.sources == ["line1", "b"]


def test_frame_names_group_by_video_and_other_names_stand_alone():
    assert source_from_name("video_2021_05_05_09_34_57__2mm_Kombi_17.png") == (
        "video_2021_05_05_09_34_57__2mm_Kombi"
    )
    assert source_from_name("photo.png") == "photo.png"


def test_write_table_round_trips_through_read_table(tmp_path):
    y = np.array([[1, 0, 0, 1], [0, 1, 1, 1]], np.float32)
    write_table(tmp_path / "t.csv", ["a_0.png", "b_0.png"], SEED_LABELS, y, ["va", "vb"])
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "name,good,error,break,length,source",
        "a_0.png,True,False,False,True,va",
        "b_0.png,False,True,True,True,vb",
    ]
    ds = read_table(tmp_path / "t.csv")
    np.testing.assert_array_equal(ds.y, y)
    assert ds.sources == ["va", "vb"]


def test_upsert_row_replaces_a_frames_row_instead_of_duplicating_it(tmp_path):
    table = tmp_path / "labels.csv"
    upsert_row(table, "v_1.png", SEED_LABELS, [True, False, False, True])
    upsert_row(table, "v_2.png", SEED_LABELS, [False, True, False, True])
    upsert_row(table, "v_1.png", SEED_LABELS, [False, False, True, False])
    ds = read_table(table)
    assert [p.name for p in ds.paths] == ["v_1.png", "v_2.png"]
    np.testing.assert_array_equal(ds.y, [[0, 0, 1, 0], [0, 1, 0, 1]])


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name,good,error\na.png,True,False\nb.png,maybe,False\n", 3, "'maybe'"),
        ("file,good,error\na.png,True,False\n", 1, "no 'name' column"),
        ("name,good\na.png,True\nb.png,False\na.png,True\n", 4, "duplicate name"),
        ("name,good,error\na.png,True\n", 2, "fields"),
        ("name,good,good\na.png,True,False\n", 1, "duplicate column"),
        ("name,source\na.png,s\n", 1, "no label columns"),
        ("name,good\n,True\n", 2, "empty name"),
    ],
)
def test_malformed_table_raises_data_error_naming_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_table(path)
    message = str(err.value)
    assert f"{path}:{line}:" in message
    assert words in message
    assert "\n" not in message


def test_missing_table_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such"):
        read_table(tmp_path / "nope.csv")


# --- class folders and dispatch -----------------------------------------------------------


def test_class_folders_read_one_hot_with_sorted_classes(tmp_path):
    _png(tmp_path / "ok" / "v1_0.png")
    _png(tmp_path / "ok" / "v1_1.jpg")
    _png(tmp_path / "broken" / "v2_5.png")
    (tmp_path / "ok" / "notes.txt").write_text("not an image")
    (tmp_path / "empty_class").mkdir()
    ds = read_class_folders(tmp_path)
    assert ds.labels == ("broken", "empty_class", "ok")
    assert ds.task == "multiclass"
    assert [p.name for p in ds.paths] == ["v2_5.png", "v1_0.png", "v1_1.jpg"]
    np.testing.assert_array_equal(ds.y, [[1, 0, 0], [0, 0, 1], [0, 0, 1]])
    assert ds.sources == ["v2", "v1", "v1"]


def test_read_dataset_dispatches_on_csv_labels_folder_and_class_folders(tmp_path):
    table = tmp_path / "t" / "labels.csv"
    _png(tmp_path / "t" / "a.png")
    table.write_text("name,good\na.png,True\n")
    _png(tmp_path / "c" / "cat" / "x.png")
    assert read_dataset(table).task == "multilabel"
    assert read_dataset(tmp_path / "t").paths == [(tmp_path / "t" / "a.png").absolute()]
    assert read_dataset(tmp_path / "c").labels == ("cat",)
    with pytest.raises(DataError):
        read_dataset(tmp_path / "missing")
    with pytest.raises(DataError):
        read_dataset(tmp_path / "t" / "a.png")


def test_subset_keeps_rows_aligned(tmp_path):
    ds = Dataset(
        paths=[Path(f"/d/{i}.png") for i in range(4)],
        y=np.eye(4, dtype=np.float32),
        labels=("a", "b", "c", "d"),
        task="multiclass",
        sources=["s0", "s1", "s2", "s3"],
    )
    part = ds.subset([3, 1])
    assert part.paths == [Path("/d/3.png"), Path("/d/1.png")]
    np.testing.assert_array_equal(part.y, np.eye(4)[[3, 1]])
    assert part.sources == ["s3", "s1"]


# --- image loading ------------------------------------------------------------------------


def test_broken_images_give_one_warning_each_a_count_and_no_crash(tmp_path, caplog):
    good = _png(tmp_path / "good.png", size=(20, 10))
    zero = tmp_path / "zero.png"
    zero.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello, not a png")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:20])
    missing = tmp_path / "missing.png"
    paths = [good, zero, text, truncated, missing, good]
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.data.images"):
        batch, mask = load_images(paths, (8, 6), workers=2)
    assert batch.shape == (6, 6, 8, 3) and batch.dtype == np.uint8
    assert mask.tolist() == [True, False, False, False, False, True]
    messages = [r.getMessage() for r in caplog.records]
    for bad in (zero, text, truncated, missing):
        assert sum(str(bad) in m for m in messages) == 1
    assert messages[-1] == "4 of 6 images unreadable and skipped"
    assert len(messages) == 5
    assert batch[0, 3, 4].tolist() == [128, 128, 128]
    assert not batch[1].any()


def test_loaded_images_are_rgb_at_the_requested_width_and_height(tmp_path):
    path = _png(tmp_path / "a.png", value=0, size=(4, 3))
    batch, mask = load_images([path], (4, 3))
    assert mask.all() and batch.shape == (1, 3, 4, 3)
    assert batch[0, 0, 0].tolist() == [0, 0, 255]  # BGR blue pixel comes back as RGB blue


# --- frames -------------------------------------------------------------------------------


def test_video_becomes_zero_padded_seed_named_frames_that_sort_in_order(tmp_path):
    video = _video(tmp_path / "seam_run.mp4", frames=20)
    out = tmp_path / "frames"
    written = extract_frames(video, out, every=5, start=2, max_frames=3)
    names = ["seam_run_00002.png", "seam_run_00007.png", "seam_run_00012.png"]
    assert [p.name for p in written] == names == sorted(p.name for p in out.glob("*.png"))
    assert all(cv2.imread(str(p)).shape == (48, 64, 3) for p in written)
    assert (out / "frames.csv").read_text().splitlines() == [
        "name,source,frame",
        "seam_run_00002.png,seam_run,2",
        "seam_run_00007.png,seam_run,7",
        "seam_run_00012.png,seam_run,12",
    ]
    assert source_from_name(names[0]) == "seam_run"  # still grouped by video


def test_corrupt_video_yields_the_decodable_frames_with_one_warning(tmp_path, caplog):
    data = bytearray(_video(tmp_path / "v.mp4", frames=30).read_bytes())
    a, b = int(len(data) * 0.4), int(len(data) * 0.6)
    data[a:b] = bytes(b - a)  # zero out the middle of the media data, keep the index
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.data.frames"):
        written = extract_frames(broken, tmp_path / "out")
    assert 0 < len(written) < 30
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "of 30 frames" in warnings[0].getMessage()


def test_truncated_avi_extracts_what_it_can_and_exits_0(tmp_path, capsys, caplog):
    data = _video(tmp_path / "rec.avi", frames=30, fourcc="MJPG").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.data.frames"):
        code = main(["frames", str(cut), "--out", str(tmp_path / "out")])
    assert code == 0
    n = len(list((tmp_path / "out").glob("cut_*.png")))
    assert 0 < n < 30
    assert capsys.readouterr().out.strip() == f"wrote {n} frames to {tmp_path / 'out'}"
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 1


def test_truncated_mp4_without_its_index_is_one_line_source_error(tmp_path, capsys):
    """OpenCV writes the mp4 index (moov) last: cutting the tail leaves nothing decodable."""
    data = _video(tmp_path / "rec.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="cannot open video"):
        extract_frames(cut, tmp_path / "out")
    assert main(["frames", str(cut), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pi-inspect frames: error:") and "\n" not in err


def test_missing_video_is_one_line_error_exit_1(tmp_path, capsys):
    code = main(["frames", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert "no such video file" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_frames_cli_writes_every_nth_frame(tmp_path, capsys):
    video = _video(tmp_path / "clip.mp4", frames=10)
    assert main(["frames", str(video), "--out", str(tmp_path / "f"), "--every", "3"]) == 0
    names = sorted(p.name for p in (tmp_path / "f").glob("*.png"))
    assert names == ["clip_00000.png", "clip_00003.png", "clip_00006.png", "clip_00009.png"]
    assert "wrote 4 frames" in capsys.readouterr().out


def test_bad_frame_selection_is_refused_before_anything_is_written(tmp_path, capsys):
    video = _video(tmp_path / "clip.mp4", frames=3)
    assert main(["frames", str(video), "--out", str(tmp_path / "f"), "--every", "0"]) == 1
    assert "every=0" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()


# --- split --------------------------------------------------------------------------------


def _grouped_dataset(n_videos: int = 12, frames: int = 8, seed: int = 3) -> Dataset:
    """Videos of near-duplicate frames; each video has its own mix of defects."""
    rng = np.random.default_rng(seed)
    paths, ys, sources = [], [], []
    for v in range(n_videos):
        video_labels = rng.random(4) < 0.4
        for f in range(frames):
            paths.append(Path(f"/data/video{v}_{f}.png"))
            ys.append(video_labels | (rng.random(4) < 0.05))
            sources.append(f"video{v}")
    return Dataset(paths, np.array(ys, np.float32), SEED_LABELS, "multilabel", sources)


def test_split_never_puts_frames_of_one_video_in_two_splits():
    ds = _grouped_dataset()
    parts = split_dataset(ds, valid=0.2, test=0.2, seed=1)
    seen = {name: {ds.sources[i] for i in idx} for name, idx in parts.items()}
    assert not seen["train"] & seen["valid"]
    assert not seen["train"] & seen["test"]
    assert not seen["valid"] & seen["test"]
    every = np.concatenate(list(parts.values()))
    assert sorted(every.tolist()) == list(range(len(ds)))  # each image exactly once
    assert all(len(idx) for idx in parts.values())


def test_seed_style_random_frame_split_would_leak_but_ours_does_not():
    ds = _grouped_dataset()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds))  # the seed: shuffle frames, cut 20 % off
    seed_valid = {ds.sources[i] for i in order[: len(ds) // 5]}
    seed_train = {ds.sources[i] for i in order[len(ds) // 5 :]}
    assert seed_valid & seed_train  # the leak this split exists to prevent
    parts = split_dataset(ds, valid=0.2, test=0.0, seed=0)
    assert not {ds.sources[i] for i in parts["valid"]} & {ds.sources[i] for i in parts["train"]}
    assert len(parts["test"]) == 0


def test_split_is_reproducible_for_a_seed_and_varies_with_it():
    ds = _grouped_dataset(n_videos=30)
    a = split_dataset(ds, seed=5)
    b = split_dataset(ds, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    others = [split_dataset(ds, seed=s) for s in range(6, 10)]
    assert any(not np.array_equal(a["valid"], o["valid"]) for o in others)


def test_split_fractions_and_labels_are_roughly_kept():
    ds = _grouped_dataset(n_videos=40, frames=5)
    parts = split_dataset(ds, valid=0.2, test=0.1, seed=0)
    n = len(ds)
    assert abs(len(parts["valid"]) / n - 0.2) <= 0.05
    assert abs(len(parts["test"]) / n - 0.1) <= 0.05
    for idx in parts.values():
        assert (ds.y[idx].sum(axis=0) > 0).all()  # every split has positives of each label


def test_bad_fractions_are_a_data_error():
    with pytest.raises(DataError):
        split_dataset(_grouped_dataset(), valid=0.6, test=0.5)


def test_split_cli_writes_seed_tables_that_read_back(tmp_path, capsys):
    data = tmp_path / "data"
    rows = []
    for v in range(10):
        for f in range(3):
            _png(data / "pics" / f"vid{v}_{f}.png", value=v * 20)
            rows.append(f"pics/vid{v}_{f}.png,{v % 2 == 0},{v % 3 == 0},{v % 4 == 0},True")
    (data / "labels.csv").write_text("name,good,error,break,length\n" + "\n".join(rows) + "\n")
    out = tmp_path / "split"
    assert main(["split", str(data), "--out", str(out), "--seed", "4"]) == 0
    report = capsys.readouterr().out
    assert "train:" in report and "valid:" in report and "test:" in report
    parts = {name: read_table(out / f"{name}.csv") for name in ("train", "valid", "test")}
    assert sum(len(p) for p in parts.values()) == 30
    header = (out / "train.csv").read_text().splitlines()[0]
    assert header == "name,good,error,break,length,source"
    original = read_dataset(data)
    truth = {p: tuple(y) for p, y in zip(original.paths, original.y.tolist(), strict=True)}
    for part in parts.values():
        assert all(p.is_file() for p in part.paths)
        assert all(truth[p] == tuple(y) for p, y in zip(part.paths, part.y.tolist(), strict=True))
    groups = [set(p.sources) for p in parts.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_split_of_class_folders_reads_back_as_multiclass(tmp_path):
    for v in range(6):
        _png(tmp_path / "data" / ("ok" if v % 2 else "bad") / f"v{v}_0.png")
    written = write_split(read_dataset(tmp_path / "data"), tmp_path / "s", valid=0.3, test=0.2)
    part = read_table(written["train"], task="multiclass")
    assert part.labels == ("bad", "ok") and part.task == "multiclass"
