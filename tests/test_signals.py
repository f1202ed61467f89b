"""LEDs, buzzer, relay and acknowledge button on gpiozero's MockFactory: pin states over time."""

from __future__ import annotations

import functools
import time

import pytest
from daemon_helpers import wait_until as _wait_until
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.config import GpioConfig
from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.signals import Lamps, Signals, make_pin_factory

wait_until = functools.partial(_wait_until, timeout=3.0)

GREEN, RED, AMBER, BUZZER, RELAY, ACK = 17, 27, 22, 23, 24, 25


def states(factory: MockFactory, *pins: int) -> tuple[bool, ...]:
    return tuple(bool(factory.pin(p).state) for p in pins)


@pytest.fixture
def factory() -> MockFactory:
    f = MockFactory()
    yield f
    f.reset()


def make(factory, **overrides) -> Signals:
    cfg = GpioConfig(buzzer=BUZZER, relay=RELAY, ack_button=ACK, red_mode="hold", **overrides)
    return Signals(cfg, factory)


def test_green_when_ok_red_and_relay_on_defect_amber_on_fault(factory):
    with make(factory) as signals:
        signals.show(fault=False, defect=False)
        assert states(factory, GREEN, RED, AMBER, RELAY) == (True, False, False, False)
        signals.show(fault=False, defect=True, new_defect=True)
        assert states(factory, GREEN, RED, AMBER, RELAY) == (False, True, False, True)
        signals.show(fault=False, defect=False)
        assert states(factory, GREEN, RED, AMBER, RELAY) == (True, False, False, False)
        signals.show(fault=True, defect=False)
        assert states(factory, GREEN, RED, AMBER, RELAY) == (False, False, True, False)


def test_close_turns_every_output_off_and_is_idempotent(factory):
    signals = make(factory)
    signals.show(fault=True, defect=True, new_defect=True)
    signals.close()
    signals.close()
    assert states(factory, GREEN, RED, AMBER, RELAY, BUZZER) == (False,) * 5
    assert signals.lamps == Lamps()


def test_red_blinks_while_a_defect_is_active(factory):
    with Signals(GpioConfig(red_mode="blink"), factory) as signals:
        factory.pin(RED).clear_states()
        signals.show(fault=False, defect=True, new_defect=True)
        assert wait_until(lambda: len(factory.pin(RED).states) >= 4)  # on, off, on, ...
        values = [s.state for s in factory.pin(RED).states]
        assert True in values and False in values[1:]


def test_buzzer_beeps_once_per_new_defect(factory):
    with make(factory, beep_s=0.05) as signals:
        factory.pin(BUZZER).clear_states()
        signals.show(fault=False, defect=True, new_defect=True)
        assert wait_until(
            lambda: not factory.pin(BUZZER).state and len(factory.pin(BUZZER).states) >= 3
        )
        signals.show(fault=False, defect=True)  # same defect continues: no new beep
        time.sleep(0.1)
        # clear_states() keeps the current (off) state as the first entry: off, one beep, off
        assert [s.state for s in factory.pin(BUZZER).states] == [False, True, False]


def test_latched_defect_holds_red_and_relay_until_acknowledged_by_the_button(factory):
    with make(factory, latch=True) as signals:
        signals.show(fault=False, defect=True, new_defect=True)
        signals.show(fault=False, defect=False)  # the defect passed ...
        assert states(factory, RED, RELAY, GREEN) == (True, True, False)  # ... but it is latched
        factory.pin(ACK).drive_low()  # operator presses acknowledge
        assert wait_until(lambda: states(factory, RED, RELAY, GREEN) == (False, False, True))
        assert not factory.pin(BUZZER).state


def test_relay_can_be_active_low(factory):
    with make(factory, relay_active_high=False) as signals:
        signals.show(fault=False, defect=False)
        assert factory.pin(RELAY).state  # idle = high
        signals.show(fault=False, defect=True, new_defect=True)
        assert not factory.pin(RELAY).state


def test_pin_factory_is_chosen_by_name_and_unknown_names_are_one_line_errors():
    assert isinstance(make_pin_factory("mock"), MockFactory)
    assert make_pin_factory(None) is None
    with pytest.raises(PiInspectError, match="unknown gpio pin factory"):
        make_pin_factory("banana")


def test_lamp_state_renders_as_a_terminal_status_line():
    assert Lamps(green=True).render() == "[G] [ ] [ ]"
    assert Lamps(red=True, amber=True, relay=True).render() == "[ ] [R] [A] relay"
