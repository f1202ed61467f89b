"""Parts: every trigger gets an acquisition ID and exactly one result (ok, ng, error, missed),
late results are counted and given the configured verdict, and nothing is lost silently."""

from __future__ import annotations

import threading
from pathlib import Path

from daemon_helpers import (
    ERROR_BGR,
    BlockingSource,
    FlakySource,
    ManualClock,
    RecordingOutput,
    wait_until,
)

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.parts import PartTracker

FAR = 1e12  # a frame timestamp after every trigger


class PartRecorder(RecordingOutput):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list = []

    def publish_part(self, result) -> None:
        self.parts.append(result)


def config(tmp_path: Path, **trigger):
    return parse_config(
        {
            "source": {"uri": "0"},
            "snapshots": {"dir": str(tmp_path / "snaps")},
            "output": {"stats_interval_s": 0.05},
            "trigger": {"mode": "demand", **trigger},
        }
    )


def running(make_daemon, cfg, source):
    out = PartRecorder()
    daemon = make_daemon(cfg, source=source, outputs=[out])
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    return daemon, out, stop, thread


# -- the tracker on its own -------------------------------------------------------------------
def test_acquisition_ids_count_up_and_each_part_ends_once_in_trigger_order():
    tracker = PartTracker(frames=2)
    ids = [tracker.trigger("plc", part_id)[0].acq_id for part_id in (7, None, 9)]
    assert ids == [1, 2, 3]
    assert tracker.frame(10, FAR, {"error": 0.2}, [], 1.0, "m") == []
    done = tracker.frame(11, FAR, {"error": 0.9}, ["error"], 1.5, "m")
    assert [(r.acq_id, r.part_id, r.code, r.alarms, r.frames) for r in done] == [
        (1, 7, "ng", ("error",), (10, 11)),
        (2, None, "ng", ("error",), (10, 11)),
        (3, 9, "ng", ("error",), (10, 11)),
    ]
    assert done[0].scores == {"error": 0.9} and done[0].processing_ms == 2.5
    assert tracker.drain() == done and tracker.drain() == []
    assert tracker.pending() == 0


def test_a_frame_captured_before_the_trigger_does_not_count_for_it():
    wall = ManualClock(start=100.0)
    tracker = PartTracker(wall=wall)
    tracker.trigger("gpio")
    assert not tracker.wants(99.9)
    assert tracker.frame(1, 99.9, {"error": 0.1}, [], 1.0, "m") == []
    assert tracker.wants(100.1)


def test_a_late_result_is_counted_and_gets_the_configured_verdict():
    clock = ManualClock()
    for late_verdict, expected in (("ng", "ng"), ("ok", "ok"), ("result", "ok")):
        tracker = PartTracker(deadline_ms=50, late_verdict=late_verdict, clock=clock)
        tracker.trigger("plc")
        clock.advance(0.08)
        (result,) = tracker.frame(1, FAR, {"error": 0.1}, [], 1.0, "m")
        assert result.code == "ok" and result.late and result.verdict == expected
        assert result.latency_ms >= 80
        assert tracker.counters["late"] == 1 and tracker.counters["ok"] == 1


def test_a_result_within_the_deadline_is_not_late():
    clock = ManualClock()
    tracker = PartTracker(deadline_ms=50, clock=clock)
    tracker.trigger("plc")
    clock.advance(0.02)
    (result,) = tracker.frame(1, FAR, {"error": 0.9}, ["error"], 1.0, "m")
    assert not result.late and result.verdict == "ng"


def test_a_part_without_a_frame_in_time_is_missed_and_rejected():
    clock = ManualClock()
    tracker = PartTracker(frame_timeout_ms=200, clock=clock)
    tracker.trigger("plc", 5)
    clock.advance(0.1)
    assert tracker.drain() == []
    clock.advance(0.2)
    (result,) = tracker.drain()
    assert (result.code, result.verdict, result.part_id) == ("missed", "ng", 5)
    assert "no frame within 200 ms" in result.reason
    assert tracker.counters["missed"] == 1


def test_triggers_beyond_max_pending_are_missed_at_once():
    tracker = PartTracker(max_pending=2)
    results = [tracker.trigger("plc")[1] for _ in range(3)]
    assert results[:2] == [None, None]
    assert results[2].code == "missed" and "max_pending" in results[2].reason
    assert tracker.pending() == 2


def test_a_frame_the_model_failed_on_is_an_error_for_its_parts():
    tracker = PartTracker()
    tracker.trigger("plc", 3)
    (result,) = tracker.failed(FAR, "inference failed: boom")
    assert (result.code, result.verdict, result.reason) == ("error", "ng", "inference failed: boom")
    assert tracker.counters["errors"] == 1


# -- the daemon -------------------------------------------------------------------------------
def test_each_trigger_yields_one_result_with_its_part_id(tmp_path: Path, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    daemon, out, stop, thread = running(make_daemon, config(tmp_path), source)
    assert wait_until(lambda: source.index > 5)
    ids = [daemon.trigger(part_id=100 + i, source="plc") for i in range(3)]
    assert wait_until(lambda: len(out.parts) == 3)
    assert wait_until(lambda: out.stats and "parts" in out.stats[-1].extra)
    stop.set()
    thread.join(10)
    assert [p.acq_id for p in out.parts] == ids
    assert [p.part_id for p in out.parts] == [100, 101, 102]
    assert all(p.code == "ok" and p.verdict == "ok" and p.source == "plc" for p in out.parts)
    assert all(p.latency_ms >= p.processing_ms > 0 for p in out.parts)
    assert out.stats[-1].extra["parts"]["triggers"] == 3
    assert out.stats[-1].extra["parts"]["ok"] == 3


def test_a_defective_part_is_ng_with_its_alarm_condition(tmp_path: Path, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, colour=ERROR_BGR, period_s=0.005)
    daemon, out, stop, thread = running(make_daemon, config(tmp_path), source)
    assert wait_until(lambda: source.index > 5)
    daemon.trigger(part_id=1)
    assert wait_until(lambda: len(out.parts) == 1)
    stop.set()
    thread.join(10)
    assert out.parts[0].code == "ng" and out.parts[0].alarms == ("error",)


def test_a_trigger_during_a_camera_outage_is_a_missed_part_never_silent(
    tmp_path: Path, make_daemon, caplog
):
    source = FlakySource(die_after=20, refusals=10**9, period_s=0.005)
    daemon, out, stop, thread = running(make_daemon, config(tmp_path), source)
    assert wait_until(lambda: out.states and out.states[-1].verdict == "fault")
    acq = daemon.trigger(part_id=77)
    assert wait_until(lambda: len(out.parts) == 1)
    assert wait_until(lambda: out.stats and out.stats[-1].extra.get("parts", {}).get("missed"))
    stop.set()
    thread.join(10)
    (part,) = out.parts
    assert (part.acq_id, part.part_id, part.code, part.verdict) == (acq, 77, "missed", "ng")
    assert "camera offline" in part.reason
    assert any("part 1 (part id 77) missed" in r.message for r in caplog.records)


def test_a_trigger_no_frame_answers_is_missed_after_the_frame_timeout(tmp_path: Path, make_daemon):
    source = BlockingSource()
    cfg = config(tmp_path, frame_timeout_ms=50.0)
    daemon, out, stop, thread = running(make_daemon, cfg, source)
    daemon.trigger(part_id=4)
    assert wait_until(lambda: len(out.parts) == 1)
    stop.set()
    source.release.set()
    thread.join(10)
    assert out.parts[0].code == "missed" and "no frame within 50 ms" in out.parts[0].reason


def test_parts_still_pending_at_shutdown_are_reported_missed(tmp_path: Path, make_daemon):
    source = BlockingSource()
    cfg = config(tmp_path, frame_timeout_ms=60_000.0)
    daemon, out, stop, thread = running(make_daemon, cfg, source)
    daemon.trigger()
    stop.set()
    source.release.set()
    thread.join(10)
    assert [p.code for p in out.parts] == ["missed"]
    assert "stopped" in out.parts[0].reason


def test_a_late_part_gets_the_late_verdict_through_the_daemon(tmp_path: Path, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.02)
    cfg = config(tmp_path, deadline_ms=0.001, late_verdict="ng")
    daemon, out, stop, thread = running(make_daemon, cfg, source)
    assert wait_until(lambda: source.index > 3)
    daemon.trigger()
    assert wait_until(lambda: len(out.parts) == 1)
    stop.set()
    thread.join(10)
    (part,) = out.parts
    assert part.code == "ok" and part.late and part.verdict == "ng"


def test_continuous_mode_has_no_parts(tmp_path: Path, make_daemon):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    cfg = parse_config({"source": {"uri": "0"}, "snapshots": {"dir": str(tmp_path / "s")}})
    daemon, out, stop, thread = running(make_daemon, cfg, source)
    assert wait_until(lambda: len(out.results) > 3)
    assert daemon.trigger(part_id=1) is None
    stop.set()
    thread.join(10)
    assert out.parts == []


def test_the_trigger_command_takes_an_optional_part_id_and_refuses_anything_else():
    import pytest

    from pi_inspect.edge.verbs import InvalidCommand, command

    assert command("trigger", b"{}", ()).args == {"part_id": None}
    assert command("trigger", b'{"part_id": 4294967295}', ()).args == {"part_id": 4294967295}
    for bad in (b'{"part_id": -1}', b'{"part_id": 4294967296}', b'{"part_id": "7"}',
                b'{"part_id": true}', b'{"part_id": 1.5}', b'{"id": 1}'):  # fmt: skip
        with pytest.raises(InvalidCommand):
            command("trigger", bad, ())


def test_an_error_part_is_rejected_even_when_late_parts_pass():
    clock = ManualClock()
    tracker = PartTracker(deadline_ms=50, late_verdict="ok", clock=clock)
    tracker.trigger("plc")
    clock.advance(0.5)
    (result,) = tracker.failed(FAR, "inference failed")
    assert (result.code, result.verdict, result.late) == ("error", "ng", False)


def test_results_leave_in_trigger_order_even_when_a_later_part_ends_first():
    clock = ManualClock()
    tracker = PartTracker(max_pending=1, frame_timeout_ms=100, clock=clock)
    tracker.trigger("plc", 1)
    tracker.trigger("plc", 2)  # missed at once: one part already pending
    assert tracker.drain() == []  # held back behind part 1
    tracker.frame(5, FAR, {"error": 0.1}, [], 1.0, "m")
    assert [(r.part_id, r.code) for r in tracker.drain()] == [(1, "ok"), (2, "missed")]


def test_a_stopping_station_misses_pending_and_later_triggers_and_says_why():
    tracker = PartTracker()
    tracker.trigger("plc", 1)
    tracker.stop("the station stopped")
    tracker.trigger("plc", 2)
    results = tracker.drain()
    assert [(r.part_id, r.code, r.reason) for r in results] == [
        (1, "missed", "the station stopped"),
        (2, "missed", "the station stopped"),
    ]


def test_a_reload_says_which_trigger_and_reject_keys_need_a_restart(tmp_path: Path):
    from pi_inspect.edge.daemon.loop import restart_needed

    def cfg(trigger, reject):
        return parse_config(
            {"source": {"uri": "0"}, "gpio": {"relay": 23}, "trigger": trigger, "reject": reject}
        )

    old = cfg({"mode": "demand"}, {"enabled": True, "delay_ms": 100.0})
    new = cfg({"mode": "gpio", "pin": 5}, {"enabled": True, "delay_ms": 200.0})
    found = restart_needed(old, new)
    assert found["reject"] == ("delay_ms",)
    assert found["trigger"] == ("mode", "pin")
    assert (
        restart_needed(old, cfg({"mode": "demand", "deadline_ms": 50.0}, old.reject.model_dump()))
        == {}
    )
