"""What the operator sees and hears: gpiozero LEDs, buzzer, relay, acknowledge and trigger buttons.

green = running and OK, red = defect (blink or hold), amber = fault (no camera, no model),
an optional buzzer beeps on a new defect, an optional relay (e.g. to stop the machine) is on
while a defect is active, and with ``latch`` red/relay/buzzer stay on until the acknowledge
button is pressed. With ``drive_relay=False`` (reject pulses, ``pi_inspect.edge.reject``) the
relay pin is left to its other owner and never follows defects. The pin factory is chosen the
gpiozero way (``GPIOZERO_PIN_FACTORY`` or ``gpio.pin_factory``) or injected as an object; it is
passed to each device, never set globally.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pi_inspect.edge.errors import PiInspectError

if TYPE_CHECKING:
    from pi_inspect.edge.config import GpioConfig, TriggerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lamps:
    """The logical signal state (what the pins are meant to show)."""

    green: bool = False
    red: bool = False
    amber: bool = False
    relay: bool = False

    def render(self) -> str:
        """A terminal status line, e.g. ``[G] [ ] [ ]``."""
        return " ".join(
            f"[{c if on else ' '}]"
            for c, on in (("G", self.green), ("R", self.red), ("A", self.amber))
        ) + (" relay" if self.relay else "")


def make_pin_factory(name: str | None) -> Any:
    """A gpiozero pin factory by its entry-point name; ``None`` leaves the choice to gpiozero."""
    if name is None:
        return None
    for entry in importlib.metadata.entry_points(group="gpiozero_pin_factories"):
        if entry.name == name:
            try:
                return entry.load()()
            except Exception as exc:  # each factory raises its own (ImportError, OSError, ...)
                raise PiInspectError(
                    f"gpio pin factory {name!r} is not usable here: {exc}"
                ) from None
    raise PiInspectError(f"unknown gpio pin factory {name!r}")


class Signals:
    """Drives the LEDs, buzzer and relay from the daemon's verdict. ``close()`` turns all off.

    ``drive_relay=False``: ``gpio.relay`` is not opened here (so another device, the
    ``Rejector``, can own it on ``pin_factory``) and ``Lamps.relay`` stays off.
    """

    def __init__(
        self,
        config: GpioConfig,
        pin_factory: Any = None,
        *,
        on_change: Callable[[Lamps], None] | None = None,
        drive_relay: bool = True,
    ) -> None:
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        self._config = config
        self._on_change = on_change
        self._lock = threading.RLock()
        self._devices: list[Any] = []
        self._lamps = Lamps()
        self._latched = False
        self._closed = False
        self._drive_relay = drive_relay
        factory = pin_factory if pin_factory is not None else make_pin_factory(config.pin_factory)
        self.pin_factory: Any = factory  # what every device here uses (None: gpiozero's default)

        def add(cls: Any, pin: int | None, **kwargs: Any) -> Any:
            if pin is None:
                return None
            device = cls(pin, pin_factory=factory, **kwargs)
            self._devices.append(device)
            return device

        try:
            self.green = add(LED, config.green)
            self.red = add(LED, config.red)
            self.amber = add(LED, config.amber)
            self.buzzer = add(Buzzer, config.buzzer)
            self.relay = add(
                DigitalOutputDevice,
                config.relay if drive_relay else None,
                active_high=config.relay_active_high,
                initial_value=False,
            )
            self.ack = add(Button, config.ack_button, pull_up=True, bounce_time=0.05)
        except GPIOZeroError as exc:
            self.close()
            raise PiInspectError(
                f"GPIO is not available ({exc}); set gpio.pin_factory or gpio.enabled = false"
            ) from None
        if self.ack is not None:
            self.ack.when_pressed = lambda: self.acknowledge()

    @property
    def lamps(self) -> Lamps:
        return self._lamps

    @property
    def latched(self) -> bool:
        """A defect has latched red, relay and buzzer (``latch``) and no one acknowledged it
        yet: they stay on after the defect ends, and the state says so."""
        with self._lock:
            return self._latched and not self._closed

    def show(self, *, fault: bool, defect: bool, new_defect: bool = False) -> None:
        """Apply the verdict: a fault shows amber, a defect red; green only when all is well."""
        with self._lock:
            if self._closed:
                return
            if new_defect:
                self._latched = self._config.latch
                self._beep()
            red = defect or self._latched
            relay = red and self._drive_relay
            lamps = Lamps(green=not fault and not red, red=red, amber=fault, relay=relay)
            if lamps == self._lamps:
                return
            previous, self._lamps = self._lamps, lamps
            self._set(self.green, lamps.green, previous.green)
            self._set(self.amber, lamps.amber, previous.amber)
            self._set(self.relay, lamps.relay, previous.relay)
            if self.red is not None and lamps.red != previous.red:
                if lamps.red and self._config.red_mode == "blink":
                    self.red.blink(on_time=0.25, off_time=0.25)
                elif lamps.red:
                    self.red.on()
                else:
                    self.red.off()
            if not red and self.buzzer is not None and self._config.latch:
                self.buzzer.off()
        if self._on_change is not None:
            self._on_change(lamps)

    def _beep(self) -> None:
        if self.buzzer is None:
            return
        on = self._config.beep_s
        if self._config.latch:
            self.buzzer.beep(on_time=on, off_time=on)  # until acknowledged
        else:
            self.buzzer.beep(on_time=on, off_time=0.01, n=1)

    def acknowledge(self) -> None:
        """The operator has seen it: release the latch and silence the buzzer."""
        with self._lock:
            self._latched = False
            if self.buzzer is not None:
                self.buzzer.off()
            lamps = self._lamps
        if lamps.red:
            self.show(fault=lamps.amber, defect=False)

    @staticmethod
    def _set(device: Any, on: bool, was: bool) -> None:
        if device is not None and on != was:
            device.on() if on else device.off()

    def close(self) -> None:
        """All outputs off, devices released. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for device in self._devices:
                try:
                    if hasattr(device, "off"):
                        device.off()
                    device.close()
                except Exception as exc:  # a half-open device must not block shutdown
                    log.debug("closing %r: %s", device, exc)
            self._devices.clear()
            self._lamps = Lamps()
        if self._on_change is not None:
            self._on_change(self._lamps)

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TriggerInput:
    """A part-present sensor or a button on a GPIO input: each activation calls ``on_trigger``."""

    def __init__(
        self,
        config: TriggerConfig,
        on_trigger: Callable[[], None],
        pin_factory: Any = None,
        *,
        factory_name: str | None = None,
    ) -> None:
        from gpiozero import Button
        from gpiozero.exc import GPIOZeroError

        if config.pin is None:
            raise PiInspectError('trigger.pin is required when trigger.mode = "gpio"')
        factory = pin_factory if pin_factory is not None else make_pin_factory(factory_name)
        try:
            self._button = Button(
                config.pin,
                pull_up=config.pull_up,
                bounce_time=config.bounce_s or None,
                pin_factory=factory,
            )
        except GPIOZeroError as exc:
            raise PiInspectError(f"GPIO trigger input is not available ({exc})") from None
        self._button.when_pressed = lambda: on_trigger()
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._button.close()

    def __enter__(self) -> TriggerInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
