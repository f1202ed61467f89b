"""Reject pulses on gpiozero's MockFactory: when the relay pin changed, after each trigger."""

from __future__ import annotations

import functools
import itertools
import time

import pytest
from daemon_helpers import wait_until as _wait_until
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.config import GpioConfig
from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.health import Reports
from pi_inspect.edge.outputs import Output, PartOutput
from pi_inspect.edge.parts import PartResult
from pi_inspect.edge.reject import Rejector
from pi_inspect.edge.signals import Signals

wait_until = functools.partial(_wait_until, timeout=3.0)

RELAY = 24
SLACK = 0.1  # how late a change may come on a shared machine (the gap between pulses is more)
EPS = 1e-6  # float rounding of the pin's summed timestamps


@pytest.fixture
def factory() -> MockFactory:
    f = MockFactory()
    yield f
    f.reset()


def part(acq_id: int, trigger_clock: float, verdict: str = "ng") -> PartResult:
    return PartResult(
        acq_id=acq_id, part_id=None, source="gpio", code=verdict, verdict=verdict, alarms=(),
        scores={}, frames=(acq_id,), processing_ms=1.0, latency_ms=10.0, late=False,
        triggered_at=0.0, trigger_clock=trigger_clock,
    )  # fmt: skip


def watch(factory: MockFactory) -> float:
    """Start the relay pin's history afresh; the monotonic time its timestamps count from (at
    or just after the true start, so a change never looks earlier than it was)."""
    factory.pin(RELAY).clear_states()
    return time.monotonic()


def changes(factory: MockFactory, base: float) -> list[tuple[float, bool]]:
    """The relay pin's history as (monotonic time, state), its state at ``watch`` first."""
    states = factory.pin(RELAY).states
    times = itertools.accumulate(s.timestamp for s in states)
    return [(base + t, bool(s.state)) for t, s in zip(times, states, strict=True)]


def pulses(factory: MockFactory, base: float) -> list[tuple[float, float]]:
    """(on, off) times of each complete pulse (active high)."""
    history = changes(factory, base)
    assert [s for _, s in history] == [False] + [True, False] * ((len(history) - 1) // 2)
    return [(history[i][0], history[i + 1][0]) for i in range(1, len(history) - 1, 2)]


def stats(rejector: Rejector) -> dict[str, int]:
    return rejector.health().stats["reject"]


def test_rejector_is_an_output_that_takes_parts_and_reports(factory):
    with Rejector.open(RELAY, pin_factory=factory, delay_s=0.1, pulse_s=0.05) as rejector:
        assert isinstance(rejector, Output)
        assert isinstance(rejector, PartOutput)
        assert isinstance(rejector, Reports)
        assert rejector.health().faults == {"reject": None}
        assert stats(rejector) == {"pulses": 0, "late": 0, "pending": 0}
        assert not factory.pin(RELAY).state


def test_each_rejected_part_pulses_delay_after_its_trigger_in_order_ok_parts_do_not(factory):
    delay, pulse = 0.15, 0.05
    with Rejector.open(RELAY, pin_factory=factory, delay_s=delay, pulse_s=pulse) as rejector:
        base = watch(factory)
        # (trigger offset, verdict); each result comes 20 ms after its trigger, before it is due
        parts = [(0.0, "ng"), (0.05, "ok"), (0.12, "ng"), (0.24, "ng")]
        for acq_id, (offset, verdict) in enumerate(parts, 1):
            time.sleep(max(0.0, base + offset + 0.02 - time.monotonic()))
            rejector.publish_part(part(acq_id, base + offset, verdict))
        assert wait_until(lambda: len(factory.pin(RELAY).states) >= 7)
        time.sleep(0.05)  # nothing more comes
        fired = pulses(factory, base)
        due = [base + offset + delay for offset, verdict in parts if verdict == "ng"]
        assert len(fired) == len(due) == 3
        for (on, off), at in zip(fired, due, strict=True):
            assert at - EPS <= on < at + SLACK  # never early, not much late
            assert pulse - EPS <= off - on < pulse + SLACK  # the configured length
        assert stats(rejector) == {"pulses": 3, "late": 0, "pending": 0}


def test_results_out_of_trigger_order_still_fire_in_trigger_order(factory):
    with Rejector.open(RELAY, pin_factory=factory, delay_s=0.2, pulse_s=0.03) as rejector:
        base = watch(factory)
        rejector.publish_part(part(2, base + 0.1))  # the later part's result comes first
        rejector.publish_part(part(1, base))
        assert stats(rejector)["pending"] == 2
        assert wait_until(lambda: len(factory.pin(RELAY).states) >= 5)
        (on1, _), (on2, _) = pulses(factory, base)
        assert base + 0.2 - EPS <= on1 < base + 0.2 + SLACK
        assert base + 0.3 - EPS <= on2 < base + 0.3 + SLACK


def test_a_result_after_its_due_time_is_counted_late_and_not_fired(factory):
    with Rejector.open(RELAY, pin_factory=factory, delay_s=0.05, pulse_s=0.05) as rejector:
        base = watch(factory)
        rejector.publish_part(part(1, base - 0.2))  # due 150 ms ago: the part has passed
        rejector.publish_part(part(2, base - 0.2, "ok"))  # late too, but nothing to reject
        time.sleep(0.15)
        assert [s for _, s in changes(factory, base)] == [False]
        assert stats(rejector) == {"pulses": 0, "late": 1, "pending": 0}
        rejector.publish_part(part(3, time.monotonic()))  # one in time still fires
        assert wait_until(lambda: stats(rejector)["pulses"] == 1)
        assert wait_until(lambda: not factory.pin(RELAY).state)
        assert len(pulses(factory, base)) == 1


def test_due_times_come_from_the_injected_clock(factory):
    now = [100.0]
    with Rejector.open(
        RELAY, pin_factory=factory, delay_s=0.5, pulse_s=0.02, clock=lambda: now[0]
    ) as rejector:
        rejector.publish_part(part(1, 99.4))  # due 99.9 < 100: late
        rejector.publish_part(part(2, 99.6))  # due 100.1: waits for the clock
        time.sleep(0.15)
        assert stats(rejector) == {"pulses": 0, "late": 1, "pending": 1}
        assert not factory.pin(RELAY).state
        now[0] = 100.1  # the worker waits in real time (0.1 s here), then asks the clock again
        assert wait_until(lambda: factory.pin(RELAY).state)
        now[0] = 100.2
        assert wait_until(lambda: not factory.pin(RELAY).state)
        assert stats(rejector) == {"pulses": 1, "late": 1, "pending": 0}


def test_overlapping_pulses_merge_into_one_on_time_and_count_twice(factory):
    delay, pulse = 0.1, 0.1
    with Rejector.open(RELAY, pin_factory=factory, delay_s=delay, pulse_s=pulse) as rejector:
        base = watch(factory)
        rejector.publish_part(part(1, base))
        rejector.publish_part(part(2, base + 0.04))  # due while the first pulse is on
        assert wait_until(lambda: len(factory.pin(RELAY).states) >= 3)
        time.sleep(0.05)
        [(on, off)] = pulses(factory, base)
        assert base + delay - EPS <= on < base + delay + SLACK
        assert off >= base + 0.04 + delay + pulse - EPS  # on until the later pulse ends
        assert off - on < 0.04 + pulse + SLACK
        assert stats(rejector) == {"pulses": 2, "late": 0, "pending": 0}


def test_close_turns_the_relay_off_drops_pending_pulses_and_is_idempotent(factory):
    rejector = Rejector.open(RELAY, pin_factory=factory, delay_s=0.0, pulse_s=5.0)
    rejector.publish_part(part(1, time.monotonic() + 0.01))
    rejector.publish_part(part(2, time.monotonic() + 10.0))
    assert wait_until(lambda: factory.pin(RELAY).state)  # the first pulse is on (for 5 s)
    started = time.monotonic()
    rejector.close()
    assert time.monotonic() - started < 1.0
    assert not factory.pin(RELAY).state
    assert stats(rejector) == {"pulses": 1, "late": 0, "pending": 0}
    rejector.close()
    rejector.publish_part(part(3, time.monotonic()))  # ignored after close
    assert not factory.pin(RELAY).state
    with Rejector.open(RELAY, pin_factory=factory, delay_s=0.0, pulse_s=0.01):
        pass  # the pin was released


def test_an_active_low_relay_idles_high_and_pulses_low(factory):
    with Rejector.open(
        RELAY, pin_factory=factory, active_high=False, delay_s=0.05, pulse_s=0.03
    ) as rejector:
        assert factory.pin(RELAY).state
        rejector.publish_part(part(1, time.monotonic()))
        assert wait_until(lambda: not factory.pin(RELAY).state)
        assert wait_until(lambda: factory.pin(RELAY).state)
    assert factory.pin(RELAY).state  # closed: off, which is high


def test_bad_timings_are_refused(factory):
    with pytest.raises(ValueError, match="pulse_s"):
        Rejector.open(RELAY, pin_factory=factory, delay_s=0.1, pulse_s=0.0)
    with pytest.raises(ValueError, match="delay_s"):
        Rejector.open(RELAY, pin_factory=factory, delay_s=-1.0, pulse_s=0.1)


def test_with_reject_on_signals_leave_the_relay_to_the_rejector(factory):
    cfg = GpioConfig(relay=RELAY, red_mode="hold")
    with Signals(cfg, factory) as signals:  # reject off: the relay follows defects as before
        signals.show(fault=False, defect=True, new_defect=True)
        assert factory.pin(RELAY).state and signals.lamps.relay
        with pytest.raises(PiInspectError, match="already in use"):  # one owner per pin
            Rejector.open(RELAY, pin_factory=factory, delay_s=0.1, pulse_s=0.05)
    with (
        Signals(cfg, factory, drive_relay=False) as signals,
        Rejector.open(
            RELAY, pin_factory=signals.pin_factory, delay_s=0.05, pulse_s=0.03
        ) as rejector,
    ):
        base = watch(factory)
        signals.show(fault=False, defect=True, new_defect=True)
        time.sleep(0.05)
        assert [s for _, s in changes(factory, base)] == [False]  # a defect leaves it alone
        assert not signals.lamps.relay and signals.lamps.red
        rejector.publish_part(part(1, time.monotonic()))
        assert wait_until(lambda: len(factory.pin(RELAY).states) >= 3)
        signals.show(fault=False, defect=False)
        assert len(pulses(factory, base)) == 1  # the part's pulse, nothing else
    assert not factory.pin(RELAY).state
