"""A candidate model in shadow: scored beside the model in service on live frames, counted and
compared, its disagreements kept as samples, and never a LED, event or output of its own."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from daemon_helpers import OK_BGR, RecordingOutput, ScriptedClassifier, script, write_video

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.errors import BundleError

NEAR_BGR = (255, 0, 110)  # error score 0.43: under 0.5 in service, over a candidate's 0.3
RED = 27


class Eager(ScriptedClassifier):
    """A candidate that calls an error at 0.3 where the model in service waits for 0.5."""

    thresholds = {**ScriptedClassifier.thresholds, "error": 0.3}


def config(tmp_path: Path, uri: str, **sections):
    return parse_config({
        "source": {"uri": uri},
        "state_dir": str(tmp_path / "state"),
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "output": {"stats_interval_s": 0.05},
        **sections,
    })


def test_a_shadow_candidate_is_compared_on_every_frame_and_changes_nothing_the_line_sees(
    tmp_path: Path, pins, make_daemon
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 10), (NEAR_BGR, 20), (OK_BGR, 10)))
    out = RecordingOutput()
    loaded = []

    def candidate(model):
        loaded.append(model.bundle)
        return Eager("c" * 64)

    daemon = make_daemon(
        config(tmp_path, str(video), shadow={"bundle": str(tmp_path / "v2"), "per_minute": 3}),
        outputs=[out], shadow_loader=candidate,
    )
    red = []
    pins.pin(RED).when_changed = lambda ticks, state: red.append(state)
    summary = daemon.run(threading.Event())

    assert loaded == [str(tmp_path / "v2")] and summary.frames == 40
    assert not summary.events and not out.events and red == []  # the line saw nothing
    record = out.stats[-1].extra["shadow"]
    assert record["frames"] == 40 and record["agreement"] == 0.5
    assert record["flips"] == {"error": {"raised": 20, "cleared": 0}}
    assert record["service_alarm_rate"] == 0.0 and record["candidate_alarm_rate"] == 0.5
    assert record["candidate"]["sha256"] == "c" * 64 and record["latency_p50_ms"] >= 0
    assert json.loads((tmp_path / "state" / "shadow.json").read_text()) == record
    kept = [json.loads(p.read_text()) for p in sorted((tmp_path / "snaps").glob("*.json"))]
    assert [k["sample"] for k in kept] == ["disagree"] * 3  # the quota's minute
    assert kept[0]["verdict"] == [] and kept[0]["candidate"]["verdict"] == ["error"]


def test_a_candidate_that_cannot_load_is_a_stats_line_and_inspection_goes_on(
    tmp_path: Path, make_daemon
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 10)))
    out = RecordingOutput()

    def broken(model):
        raise BundleError(f"bundle {model.bundle}: model.tflite is missing")

    daemon = make_daemon(
        config(tmp_path, str(video), shadow={"bundle": str(tmp_path / "v2")}),
        outputs=[out], shadow_loader=broken,
    )
    summary = daemon.run(threading.Event())
    assert summary.frames == 10 and not summary.faults
    shadow = out.stats[-1].extra["shadow"]
    assert "model.tflite is missing" in shadow["error"] and shadow["bundle"] == str(tmp_path / "v2")


def test_every_nth_frame_is_scored_when_the_cpu_cannot_afford_every_one(tmp_path: Path, make_daemon):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 30)))
    out = RecordingOutput()
    daemon = make_daemon(
        config(tmp_path, str(video), shadow={"bundle": "v2", "every": 3}),
        outputs=[out], shadow_loader=lambda _m: ScriptedClassifier("c" * 64),
    )
    daemon.run(threading.Event())
    record = out.stats[-1].extra["shadow"]
    assert record["frames"] == 10 and record["agreement"] == 1.0 and record["flips"] == {}
