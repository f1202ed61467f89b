"""A model whose outputs are not scores (NaN, infinity, out of [0, 1]) is a fault of the
station, amber and in its state; never a score, a silent pass, or invalid JSON on the wire."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from daemon_helpers import OK_BGR, Prediction, ScriptedClassifier, script, wait_until, write_video

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.outputs.jsonlines import JsonLinesOutput

AMBER = 22


class BrokenClassifier(ScriptedClassifier):
    """Scores ``value`` for every label after ``good_frames`` ordinary frames."""

    def __init__(self, value: float, good_frames: int = 0) -> None:
        super().__init__()
        self.value, self.good_frames = value, good_frames

    def predict(self, rgb, with_features: bool = True):
        prediction = super().predict(rgb, with_features)
        if self.calls > self.good_frames:
            return Prediction(np.full(4, self.value, np.float32), prediction.features)
        return prediction


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 7.5, -0.5])
def test_a_model_output_that_is_not_a_score_is_an_amber_fault_and_never_published(
    value, tmp_path, make_daemon, pins
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 40)))
    config = parse_config({"state_dir": str(tmp_path), "source": {"uri": str(video), "loop": True},
                           "snapshots": {"enabled": False}, "stdout": {"results": True}})
    stream = io.StringIO()
    daemon = make_daemon(config, classifier_loader=lambda _m: BrokenClassifier(value, 5),
                         outputs=[JsonLinesOutput(stream, results=True)])
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: daemon.status.state is not None
                          and daemon.status.state.verdict == "fault", timeout=10)
        assert "not a score" in daemon.status.state.fault and pins.pin(AMBER).state
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # all valid JSON
    results = [line for line in lines if line["type"] == "result"]
    assert len(results) == 5  # the ordinary frames only
    assert all(0.0 <= s <= 1.0 for r in results for s in r["scores"].values())


def test_trigger_in_continuous_mode_says_it_does_nothing_and_in_demand_mode_runs(
    tmp_path, make_daemon
):
    from pi_inspect.edge.outputs import Command

    for mode, ok in (("continuous", False), ("demand", True)):
        config = parse_config({"state_dir": str(tmp_path), "trigger": {"mode": mode}})
        reply = make_daemon(config).receive(Command("trigger"))
        assert reply.ok is ok
        if not ok:
            assert "continuous" in reply.error and "demand" in reply.error
