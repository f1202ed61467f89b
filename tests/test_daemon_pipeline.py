"""Where the resize runs: the capture worker moves it to the less busy of the two threads."""

from __future__ import annotations

from edge.pipeline import CaptureWorker, FrameQueue


def worker(read_ms: float) -> CaptureWorker:
    w = CaptureWorker(lambda: None, FrameQueue(2, drop_oldest=False))
    w.read_ms = read_ms
    return w


def test_resize_stays_in_capture_while_decoding_is_cheaper_than_inference():
    w = worker(read_ms=0.4)
    assert w.balance_prepare(infer_ms=0.9) is True


def test_resize_moves_to_the_inference_loop_when_decoding_is_the_slower_stage():
    w = worker(read_ms=1.4)
    assert w.balance_prepare(infer_ms=0.8) is False
    w.read_ms = 0.5  # decoding got cheap again (smaller frames): the resize comes back
    assert w.balance_prepare(infer_ms=0.8) is True


def test_placement_does_not_flap_on_noise_around_the_balance_point():
    w = worker(read_ms=1.05)
    assert w.balance_prepare(infer_ms=1.0) is True  # within the 15% margin: stays
    w.read_ms = 1.2
    assert w.balance_prepare(infer_ms=1.0) is False
    w.read_ms = 0.95
    assert w.balance_prepare(infer_ms=1.0) is False  # within the margin the other way too
