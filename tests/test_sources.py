"""Camera sources on real files: videos written with cv2.VideoWriter, truncated copies, bad images."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_helpers import OK_BGR, FlakySource, script, solid, write_video

from pi_inspect.edge.config import SourceConfig
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.pipeline import Captured, CaptureWorker, FrameQueue
from pi_inspect.edge.sources import FolderSource, OpenCVSource, make_source


def read_all(source) -> list:
    frames = []
    source.open()
    try:
        while (frame := source.read()) is not None:
            frames.append(frame)
    finally:
        source.close()
    return frames


def test_video_file_gives_every_frame_then_ends(tmp_path: Path):
    path = write_video(tmp_path / "v.avi", script(((0, 0, 0), 5), ((255, 255, 255), 5)))
    frames = read_all(OpenCVSource(str(path), live=False))
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].image.mean() < 30 and frames[-1].image.mean() > 225


def test_looping_video_keeps_counting_frames(tmp_path: Path):
    path = write_video(tmp_path / "v.avi", script((OK_BGR, 4)))
    source = OpenCVSource(str(path), live=False, loop=True)
    source.open()
    indices = [source.read().index for _ in range(10)]
    source.close()
    assert indices == list(range(10))


def test_truncated_mp4_cannot_be_opened_with_a_clear_message(tmp_path: Path):
    good = write_video(tmp_path / "v.mp4", script((OK_BGR, 30)))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SourceError, match="truncated or not a video"):
        OpenCVSource(str(cut), live=False).open()


def test_truncated_avi_yields_its_frames_and_warns_once(tmp_path: Path, caplog):
    good = write_video(tmp_path / "v.avi", script((OK_BGR, 40)))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.sources"):
        frames = read_all(OpenCVSource(str(cut), live=False))
    assert 0 < len(frames) < 40
    assert sum("truncated" in r.message for r in caplog.records) <= 1


def test_missing_video_file_is_a_source_error(tmp_path: Path):
    with pytest.raises(SourceError, match="not found"):
        OpenCVSource(str(tmp_path / "nope.mp4"), live=False).open()


def test_folder_skips_corrupt_images_with_one_warning_each(tmp_path: Path, caplog):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), solid(OK_BGR))
    (tmp_path / "1b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "2b.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.sources"):
        source = FolderSource(tmp_path, loop=True)
        source.open()
        frames = [source.read() for _ in range(6)]  # two passes
        source.close()
    assert [f.index for f in frames] == list(range(6))
    warnings = [r.message for r in caplog.records if "unreadable" in r.message]
    assert len(warnings) == 2  # once per bad file, not once per pass


def test_folder_with_only_corrupt_images_fails_instead_of_spinning(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"junk")
    source = FolderSource(tmp_path, loop=True)
    source.open()
    with pytest.raises(SourceError, match="no readable images"):
        source.read()


def test_empty_folder_is_a_source_error(tmp_path: Path):
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path).open()


@pytest.mark.parametrize(
    ("uri", "kind", "live", "is_path"),
    [
        ("0", "usb", True, False),
        ("/dev/video2", "usb", True, False),
        ("/dev/v4l/by-id/usb-cam-video-index0", "usb", True, False),
        ("rtsp://cam/1", "stream", True, False),
        ("http://x/mjpg", "stream", True, False),
        ("picamera2", "picamera2", True, False),
        ("line.mp4", "file", False, True),
    ],
)
def test_auto_kind_is_judged_from_the_uri_once(uri, kind, live, is_path):
    resolved = SourceConfig(uri=uri).resolved()
    assert (resolved.name, resolved.live, resolved.is_path) == (kind, live, is_path)


def test_a_folder_uri_resolves_to_a_folder_that_is_a_path(tmp_path: Path):
    resolved = SourceConfig(uri=str(tmp_path)).resolved()
    assert (resolved.name, resolved.live, resolved.is_path) == ("folder", False, True)


def test_folder_uri_is_an_image_folder(tmp_path: Path):
    assert isinstance(make_source(SourceConfig(uri=str(tmp_path))), FolderSource)


def test_picamera2_missing_is_a_one_line_source_error():
    source = make_source(SourceConfig(kind="picamera2"))
    try:
        import picamera2  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match="apt install python3-picamera2"):
            source.open()
    else:  # pragma: no cover - on a Pi
        pytest.skip("picamera2 is installed")


def test_source_that_dies_mid_run_is_reopened_with_backoff_and_comes_back():
    source = FlakySource(die_after=5, refusals=2)
    queue = FrameQueue(100, drop_oldest=True)
    statuses: list[tuple[bool, str | None]] = []
    worker = CaptureWorker(
        lambda: source,
        queue,
        backoff_min_s=0.01,
        backoff_max_s=0.02,
        on_status=lambda online, fault: statuses.append((online, fault)),
    )
    worker.start()
    deadline = time.monotonic() + 10
    while source.index < 15 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert source.index >= 15  # frames flowed again after the failure
    assert source.opens == 4  # first open, two refusals, the reopen that worked
    assert statuses[0] == (True, None)
    assert statuses[1] == (False, "camera offline: camera unplugged")
    assert (False, "camera offline: no such device /dev/video9") in statuses
    assert statuses[-1] == (True, None)


def test_newest_frame_wins_and_drops_are_counted():
    queue = FrameQueue(2, drop_oldest=True)
    stop = threading.Event()
    for i in range(5):
        queue.put(Captured(_frame(i), None, None), stop)
    assert queue.dropped == 3
    assert [queue.get(0).frame.index for _ in range(2)] == [3, 4]


def test_blocking_queue_loses_nothing_and_stops_waiting_on_stop():
    queue = FrameQueue(1, drop_oldest=False)
    stop = threading.Event()
    assert queue.put(Captured(_frame(0), None, None), stop)
    stop.set()
    assert not queue.put(Captured(_frame(1), None, None), stop)
    assert queue.dropped == 0 and len(queue) == 1


def _frame(i: int):
    from pi_inspect.edge.sources import Frame

    return Frame(i, 0.0, np.zeros((2, 2, 3), np.uint8))


def test_a_corrupt_image_is_warned_about_once_per_run_across_reopens(tmp_path: Path, caplog):
    """A folder of only corrupt images fails, the capture thread reopens it (a new source each
    time) with backoff: the same file must not fill the journal with the same line."""
    (tmp_path / "only.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    opened: list[FolderSource] = []

    def factory() -> FolderSource:
        opened.append(FolderSource(tmp_path, loop=True))
        return opened[-1]

    worker = CaptureWorker(
        factory, FrameQueue(2, drop_oldest=True), backoff_min_s=0.01, backoff_max_s=0.01
    )
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.sources"):
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while len(opened) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            worker.stop()
    assert len(opened) >= 4
    warnings = [r.message for r in caplog.records if "unreadable" in r.message]
    assert warnings == [f"skipping unreadable image {tmp_path / 'only.jpg'}"]
