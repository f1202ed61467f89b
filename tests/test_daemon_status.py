"""The fault registry and the state it gives: any part raises and clears named faults."""

from __future__ import annotations

import logging
import threading

from pi_inspect.edge.daemon.status import Faults, Status
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.stats import read_cpu_temp_c

MODEL = ModelInfo("scripted", "1", "a" * 64, ("good", "error"))


def test_a_fault_logs_one_line_when_it_starts_and_one_when_it_ends(caplog):
    faults = Faults()
    with caplog.at_level(logging.INFO, logger="pi_inspect.edge.daemon.status"):
        faults.set("spool", "spool unwritable: disk full")
        faults.set("spool", "spool unwritable: read-only file system")  # same fault, new text
        faults.clear("spool")
        faults.clear("spool")  # not set: nothing to end
    assert [r.getMessage() for r in caplog.records] == [
        "fault: spool unwritable: disk full",
        "fault cleared: spool unwritable: read-only file system",
    ]


def test_every_active_fault_is_in_the_state_and_the_verdict_is_fault_until_all_clear():
    status = Status(wall=lambda: 1.0)
    ok = status.update(model=MODEL, active=(), camera_online=True)
    assert ok is not None and ok.verdict == "ok" and ok.fault is None
    status.faults.set("camera", "camera offline: unplugged")
    status.faults.set("spool", "spool unwritable: disk full\nsecond line")
    state = status.update(model=MODEL, active=(), camera_online=False)
    assert state.verdict == "fault"
    assert state.fault == "camera offline: unplugged; spool unwritable: disk full"
    status.faults.clear("camera")
    assert status.update(model=MODEL, active=(), camera_online=True).verdict == "fault"
    status.faults.clear("spool")
    assert status.update(model=MODEL, active=("error",), camera_online=True).verdict == "defect"
    assert status.update(model=MODEL, active=("error",), camera_online=True) is None  # unchanged


def test_faults_can_be_raised_from_any_thread():
    faults = Faults()
    threads = [
        threading.Thread(target=faults.set, args=(f"part{i}", f"part {i} failed"))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(faults.active()) == [f"part{i}" for i in range(8)]


def test_a_fault_start_is_counted_once_by_the_hook():
    started: list[str] = []
    faults = Faults(on_start=started.append)
    for _ in range(3):
        faults.set("model", "no model: bundle missing")
    faults.clear("model")
    faults.set("model", "no model: bundle missing")
    assert started == ["no model: bundle missing"] * 2


def test_cpu_temperature_is_read_in_degrees_or_none(tmp_path):
    zone = tmp_path / "temp"
    zone.write_text("51234\n")
    assert read_cpu_temp_c(zone) == 51.2
    zone.write_text("not a number")
    assert read_cpu_temp_c(zone) is None
    assert read_cpu_temp_c(tmp_path / "missing") is None


def test_the_state_names_what_a_latch_holds_after_the_defect_ended_until_acknowledged():
    from gpiozero.pins.mock import MockFactory

    from pi_inspect.edge.config import GpioConfig
    from pi_inspect.edge.signals import Signals

    model = ModelInfo(
        "seam", "1", "a" * 64, ("good", "length"),
        (("good", "never", "a flawless seam"), ("length", "absent", "stitch pitch is 2 mm")),
    )  # fmt: skip
    status = Status(wall=lambda: 1.0)
    with Signals(GpioConfig(latch=True, red_mode="hold"), MockFactory()) as signals:
        status.drive(signals)
        raised = status.update(model=model, active=("length",), camera_online=True, new_defect=True)
        assert raised.conditions == ("length absent",) and raised.latched == ("length absent",)
        ended = status.update(model=model, active=(), camera_online=True)
        assert ended.verdict == "ok" and ended.lamps["red"] and ended.lamps["relay"]
        assert ended.latched == ("length absent",)
        assert ended.to_dict()["latched"] == ["length absent"]
        status.acknowledge()
        released = status.update(model=model, active=(), camera_online=True)
        assert not released.lamps["red"] and released.latched == ()


def test_without_a_latch_the_state_never_says_latched():
    from gpiozero.pins.mock import MockFactory

    from pi_inspect.edge.config import GpioConfig
    from pi_inspect.edge.signals import Signals

    status = Status(wall=lambda: 1.0)
    with Signals(GpioConfig(latch=False, red_mode="hold"), MockFactory()) as signals:
        status.drive(signals)
        raised = status.update(model=MODEL, active=("error",), camera_online=True, new_defect=True)
        assert raised.latched == ()
        ended = status.update(model=MODEL, active=(), camera_online=True)
        assert not ended.lamps["red"] and ended.latched == ()
