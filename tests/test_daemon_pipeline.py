"""Where the resize runs: the Preparer moves it to the less busy of the two threads."""

from __future__ import annotations

import time

import numpy as np
from daemon_helpers import wait_until

from pi_inspect.edge.pipeline import CaptureWorker, FrameQueue, Preparer
from pi_inspect.edge.sources import Frame


def settle(preparer: Preparer, read_ms: float, infer_ms: float) -> bool:
    """Report steady per-frame work for both sides; where the resize runs afterwards."""
    for _ in range(256):  # the moving averages settle; every 32nd frame re-balances
        preparer.record_read(read_ms)
        preparer.record_infer(infer_ms)
    return preparer.in_capture


def test_resize_stays_in_capture_while_decoding_is_cheaper_than_inference():
    assert settle(Preparer(), read_ms=0.4, infer_ms=0.9) is True


def test_resize_moves_to_the_inference_loop_when_decoding_is_the_slower_stage():
    p = Preparer()
    assert settle(p, read_ms=1.4, infer_ms=0.8) is False
    # decoding got cheap again (smaller frames): the resize comes back
    assert settle(p, read_ms=0.5, infer_ms=0.8) is True


def test_placement_does_not_flap_on_noise_around_the_balance_point():
    p = Preparer()
    assert settle(p, read_ms=1.05, infer_ms=1.0) is True  # within the 15% margin: stays
    assert settle(p, read_ms=1.2, infer_ms=1.0) is False
    assert settle(p, read_ms=0.95, infer_ms=1.0) is False  # within the margin the other way too


class WaitingCamera:
    """A live camera at its frame rate: ``read()`` blocks until the next frame, doing no work."""

    live = True
    name = "camera 0"

    def __init__(self, frames: int, period_s: float) -> None:
        self._left, self._period = frames, period_s

    def open(self) -> None:
        pass

    def read(self):
        if self._left == 0:
            return None
        self._left -= 1
        time.sleep(self._period)
        return Frame(self._left, time.time(), np.zeros((24, 32, 3), np.uint8))

    def close(self) -> None:
        pass


def test_waiting_for_the_camera_does_not_count_as_capture_work():
    """A 100 FPS camera makes each read wait 10 ms; decoding nothing, the capture thread is
    idle, so the resize stays there even though the loop's work (2 ms) is far shorter."""
    p = Preparer()
    p.set_size((16, 16))
    w = CaptureWorker(lambda: WaitingCamera(40, 0.01), FrameQueue(2, drop_oldest=True), preparer=p)
    w.start()
    try:
        assert wait_until(w.finished.is_set, timeout=10)
    finally:
        w.stop()
    assert p.read_ms < 1.0  # the reads' CPU time, not their 10 ms of waiting
    for _ in range(32):  # the loop reports its work; the 32nd frame re-balances
        p.record_infer(2.0)
    assert p.in_capture is True


def test_the_model_input_is_resized_once_wherever_the_resize_runs():
    image = np.zeros((24, 32, 3), np.uint8)
    p = Preparer()
    p.set_size((16, 16))
    in_capture = p.capture(Frame(0, 0.0, image))
    assert in_capture.size == (16, 16) and in_capture.prepared.shape == (16, 16, 3)
    rgb, _ms = p.model_input(in_capture, (16, 16))
    assert rgb is in_capture.prepared  # not resized again in the loop
    settle(p, read_ms=2.0, infer_ms=0.5)
    in_loop = p.capture(Frame(1, 0.0, image))
    assert in_loop.prepared is None
    assert p.model_input(in_loop, (16, 16))[0].shape == (16, 16, 3)


def test_feature_map_is_fetched_only_for_frames_that_get_a_heat_map_snapshot(tmp_path, make_daemon):
    import threading

    from daemon_helpers import ERROR_BGR, OK_BGR, ScriptedClassifier, script, write_video

    from pi_inspect.edge.config import parse_config

    class Counting(ScriptedClassifier):
        feature_calls = 0

        def predict(self, rgb, with_features=True):
            Counting.feature_calls += bool(with_features)
            return super().predict(rgb, with_features)

    frames = script((OK_BGR, 10), (ERROR_BGR, 6), (OK_BGR, 10), (ERROR_BGR, 6), (OK_BGR, 5))
    video = write_video(tmp_path / "line.avi", frames)
    settings = {
        "source": {"uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "stdout": {"enabled": False},
    }
    daemon = make_daemon(parse_config(settings), classifier_loader=lambda m: Counting())
    summary = daemon.run(threading.Event())

    assert summary.frames == len(frames) and len(summary.events) == 2
    assert Counting.feature_calls == 2  # one per defect start, none for the other 35 frames
    assert len(list((tmp_path / "snaps").glob("*.heat.jpg"))) == 2


class OverflowingCamera:
    """What OpenCV does with a camera index beyond a C int: OverflowError from open()."""

    live = True
    name = "camera 99999999999999999999"

    def __init__(self, opens: list[int]) -> None:
        self._opens = opens

    def open(self) -> None:
        self._opens.append(1)
        raise OverflowError("Python int too large to convert to C int")

    def read(self):
        return None

    def close(self) -> None:
        pass


def test_an_unexpected_error_opening_the_source_is_a_camera_fault_that_is_retried():
    import time

    opens: list[int] = []
    w = CaptureWorker(
        lambda: OverflowingCamera(opens),
        FrameQueue(2, drop_oldest=True),
        backoff_min_s=0.01,
        backoff_max_s=0.02,
    )
    w.start()
    try:
        deadline = time.monotonic() + 10
        while len(opens) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(opens) >= 3  # the capture thread lives on and retries
        assert not w.online
        assert w.fault is not None and w.fault.startswith("camera offline: OverflowError")
    finally:
        w.stop()


def test_a_camera_fault_logs_one_line_when_it_starts_and_one_when_it_ends(caplog):
    import logging
    import time

    opens: list[int] = []
    plugged = []

    class Camera(OverflowingCamera):
        def open(self) -> None:
            self._opens.append(1)
            if not plugged:
                raise OSError("no such device /dev/video0")

    w = CaptureWorker(
        lambda: Camera(opens),
        FrameQueue(2, drop_oldest=True),
        backoff_min_s=0.01,
        backoff_max_s=0.01,
    )
    with caplog.at_level(logging.INFO, logger="pi_inspect.edge.pipeline"):
        w.start()
        try:
            deadline = time.monotonic() + 10
            while len(opens) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            plugged.append(True)
            while not w.online and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            w.stop()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(opens) >= 5
    assert [line.split(" (")[0] for line in lines] == [
        "camera offline: no such device /dev/video0",
        "camera online again",
    ], lines
