"""Assembling a station: ``build`` (or ``Daemon(...)``) wires the parts, ``run`` opens the
outputs, LEDs and snapshot store, then hands over to the loop.

Everything that touches hardware or the outside world is injectable (source, outputs, pin
factory, notifier, classifier loader, clock), so tests and the demo run it in-process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pi_inspect.edge.collect import Keep
from pi_inspect.edge.config import Config, load_config, output_context
from pi_inspect.edge.daemon.dispatch import Dispatcher
from pi_inspect.edge.daemon.hub import Hub
from pi_inspect.edge.daemon.inspector import Inspector
from pi_inspect.edge.daemon.loop import Loop, RunSummary
from pi_inspect.edge.daemon.model import (
    AnomalyLoader,
    ClassifierLoader,
    ModelSlot,
    load_anomaly_from_config,
    load_from_config,
)
from pi_inspect.edge.daemon.protocols import Command, Notifier, NullNotifier, Output
from pi_inspect.edge.daemon.status import Faults, Status
from pi_inspect.edge.daemon.watch import PromotionWatch
from pi_inspect.edge.deploy import rollback_local
from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.fleet.desired import Desired
from pi_inspect.edge.fleet.station import desired_applier, use_desired
from pi_inspect.edge.outputs.registry import plugins
from pi_inspect.edge.pipeline import Preparer
from pi_inspect.edge.promote import models_dir
from pi_inspect.edge.reject import Rejector
from pi_inspect.edge.signals import Lamps, Signals, TriggerInput
from pi_inspect.edge.snapshots import SnapshotStore
from pi_inspect.edge.sources import FrameSource, make_source
from pi_inspect.edge.station_config import DEFAULT

log = logging.getLogger(__name__)


class Daemon:
    """One inspection station. Build it, then call ``run(stop_event)``.

    ``trigger``, ``request_snapshot``, ``reload``, ``request_reload``, ``set_thresholds`` and
    ``acknowledge`` are thread-safe; outputs reach them only as commands through the dispatcher.
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | Path | None = None,
        overrides: Callable[[Config], Config] | None = None,
        source: FrameSource | None = None,
        source_factory: Callable[[], FrameSource] | None = None,
        outputs: Sequence[Output] | None = None,
        pin_factory: Any = None,
        notifier: Notifier | None = None,
        classifier_loader: ClassifierLoader = load_from_config,
        anomaly_loader: AnomalyLoader = load_anomaly_from_config,
        shadow_loader: ClassifierLoader | None = None,
        on_lamps: Callable[[Lamps], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        name: str = DEFAULT,
        hub: Hub | None = None,
    ) -> None:
        if source is not None and source_factory is not None:
            raise ValueError("pass source or source_factory, not both")
        injected = source_factory or ((lambda: source) if source is not None else None)
        self.summary = RunSummary()
        self.status = Status(Faults(on_start=self.summary.faults.append), wall=wall)
        self._slot = ModelSlot(
            classifier_loader, self.status.faults, anomaly_loader=anomaly_loader, clock=clock
        )
        self._preparer = Preparer(clock=clock)
        self._inspector = Inspector(
            self._slot,
            self._preparer,
            self.status.faults,
            config.trigger,
            clock=clock,
            wall=wall,
            collect=config.collect,
            shadow=config.shadow,
            shadow_loader=lambda bundle: (shadow_loader or classifier_loader)(
                # the config in force: the loop's once it exists (a reload replaces it)
                (self._loop.config if hasattr(self, "_loop") else config).model.model_copy(
                    update={"bundle": bundle}
                )
            ),
            record_dir=config.resolved_state_dir(),
            watch=PromotionWatch(config.resolved_state_dir(), config.shadow.watch_frames),
            drift=config.drift,
        )
        self._dispatcher = Dispatcher(
            self._slot.heatmap,
            self,  # the station the verbs (pi_inspect.edge.verbs) run on
            top_label=self._slot.top_alarm_label,
            device=config.device.id,
            name=name,
            more_reporters=lambda: (
                self._inspector.reporters() + ([self._applier] if self._applier is not None else [])
            ),
            on_rollback=self._auto_rollback,
        )

        self._given = config
        self._desired_shadow: str | None = None  # a bundle the fleet wants run in shadow

        def reread() -> Config:
            """The config a reload applies: the file again (or the config given), with the
            command line's overrides and the fleet's desired shadow."""
            fresh = self._given
            if config_path is not None:
                fresh = load_config(config_path)
                fresh = overrides(fresh) if overrides is not None else fresh
            if self._desired_shadow is None:
                return fresh
            shadow = fresh.shadow.model_copy(update={"bundle": self._desired_shadow})
            return fresh.model_copy(update={"shadow": shadow})

        injected_live = getattr(source, "live", None)
        self._loop = Loop(
            config,
            slot=self._slot,
            inspector=self._inspector,
            status=self.status,
            dispatcher=self._dispatcher,
            preparer=self._preparer,
            notifier=notifier if notifier is not None else NullNotifier(),
            # An injected source stays: a reload that changes [source] does not replace it.
            source_factory=(lambda _c: injected())
            if injected
            else (lambda c: make_source(c.source, model_size=self._slot.input_size())),
            live=(
                (lambda _c: bool(injected_live))
                if injected_live is not None
                else (lambda c: c.source.resolved().live)
            ),
            reread=reread,
            summary=self.summary,
            fixed_source=injected is not None,
            clock=clock,
            name=name,
        )
        self._outputs = list(outputs) if outputs is not None else None
        self.name = name  # which of the device's stations ([stations.<name>])
        self._hub = hub  # shared with the device's other stations, which close it
        self._pin_factory = pin_factory
        self._on_lamps = on_lamps
        self._clock = clock
        self._applier = desired_applier(config, self._use_desired)
        self.stop_event = threading.Event()

    @property
    def config(self) -> Config:
        return self._loop.config

    # -- what commands (and signal handlers) may ask, thread-safe ----------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self._slot.labels

    def trigger(self, part_id: int | None = None, source: str = "command") -> int | None:
        """A part: inspect the next ``trigger.frames`` frames captured from now on; returns
        its acquisition ID (None, and nothing to do, in continuous mode). Its one result
        (``pi_inspect.edge.parts``) goes to every output that takes parts."""
        return self._inspector.trigger(source, part_id)

    def request_snapshot(self) -> str | None:
        """Save the latest inspected frame (with the heat map of its top alarm label)."""
        latest = self._inspector.latest
        label = (
            self._slot.top_alarm_label(latest.scores, latest.result.active)
            if latest is not None
            else None
        )
        return self._dispatcher.snapshot(latest, label)

    def acknowledge(self) -> None:
        """Release a latched red LED, relay and buzzer (as the acknowledge button does)."""
        self.status.acknowledge()

    def reload(self) -> bool:
        """Reload config (if from a file) and bundle; anything bad is refused, the old one runs."""
        return self._loop.reload()

    def request_reload(self) -> None:
        """Signal-handler safe: the inference loop reloads on its next iteration."""
        self._loop.request_reload()

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]:
        return self._slot.set_thresholds(thresholds)

    def collect(self, right: list[str] | None) -> str | None:
        """Keep the latest inspected frame as a sample an operator flagged, with the labels
        they say are right (``[]``: good; None: not said)."""
        thresholds = {label: rule.threshold for label, rule in self._slot.rules().items()}
        keep = Keep("operator", thresholds)
        return self._dispatcher.sample(self._inspector.latest, keep, right)

    def apply_desired(self, desired: Desired) -> bool:
        """The fleet's desired state: fetched, checked and applied off this thread."""
        if self._applier is None:
            raise ValueError("this station does not follow a fleet ([fleet] enabled = false)")
        return self._applier.submit(desired)

    def _use_desired(self, mode: str, name: str) -> None:
        """A bundle the fleet sent, installed as ``name``: run it in shadow, switch to it, or
        (``rollback``, ``name`` its sha256) undo it; then reload."""
        self._desired_shadow = use_desired(self.config, mode, name)
        self.request_reload()

    def _auto_rollback(self, reason: str) -> None:
        """Switch ``current`` back to ``previous`` and reload, off the inspection thread (the
        previous bundle is checked in a child process first, as ``deploy --rollback`` does)."""

        def run() -> None:
            log.warning("automatic rollback: %s", reason)
            try:
                switch = rollback_local(models_dir(self.config))
            except (PiInspectError, OSError) as exc:
                log.error("automatic rollback failed, the promoted model stays: %s", exc)
                return
            log.warning("rolled back to %s; reloading", switch.current)
            self.request_reload()

        threading.Thread(target=run, name="rollback", daemon=True).start()

    def receive(self, command: Command):
        """Run one command as an output's receiver would (what MQTT's ``cmd/*`` topics do)."""
        return self._dispatcher.receive(command)

    # -- run ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> RunSummary:
        """Run until ``stop`` is set (or a file/folder source ends). Never raises on a fault."""
        stop = stop if stop is not None else self.stop_event
        config = self.config
        hub = self._hub
        if hub is None:  # a station of its own: its outputs open and close with it
            hub = Hub(self._outputs if self._outputs is not None else open_outputs(config))
            hub.attach(self.name, self.receive)
        signals, trigger_input, rejector = self._open_gpio(config)
        own = [rejector] if rejector else []
        owned = own if self._hub is not None else None
        self._dispatcher.open([*hub.outputs, *own], open_snapshots(config), owned=owned)
        hub.open()
        self.status.drive(signals)
        closers = [trigger_input] if trigger_input else []
        closers += [self._applier] if self._applier is not None else []
        return self._loop.run(stop, closers=[*closers, self._inspector])

    def _open_gpio(
        self, config: Config
    ) -> tuple[Signals | None, TriggerInput | None, Rejector | None]:
        """LEDs, trigger input and reject pulses. Without GPIO the station still inspects and
        reports: the ``gpio`` fault is in its state (there is no LED to show it on); a restart
        retries. The rejector is an output (the dispatcher sends it parts and closes it)."""
        gpio, reject = config.gpio, config.reject
        signals = trigger_input = rejector = None
        try:
            if gpio.enabled:
                signals = Signals(
                    gpio, self._pin_factory, on_change=self._on_lamps,
                    drive_relay=not reject.enabled,
                )  # fmt: skip
            if signals is not None and reject.enabled and gpio.relay is not None:
                rejector = Rejector.open(
                    gpio.relay, pin_factory=signals.pin_factory,
                    active_high=gpio.relay_active_high, delay_s=reject.delay_ms / 1000.0,
                    pulse_s=reject.pulse_ms / 1000.0, clock=self._clock,
                )  # fmt: skip
            if config.trigger.mode == "gpio":
                trigger_input = TriggerInput(
                    config.trigger,
                    lambda: self.trigger(source="gpio"),
                    self._pin_factory,
                    factory_name=gpio.pin_factory,
                )
        except PiInspectError as exc:
            self.status.faults.set("gpio", f"no GPIO: {str(exc).splitlines()[0]}")
            for part in (rejector, signals):
                if part is not None:
                    part.close()
            return None, None, None
        return signals, trigger_input, rejector


def build(
    config: Config,
    *,
    source: FrameSource | None = None,
    outputs: Sequence[Output] | None = None,
    pin_factory: Any = None,
    notifier: Notifier | None = None,
    clock: Callable[[], float] = time.monotonic,
    **parts: Any,
) -> Daemon:
    """A station for ``config``; ``parts`` are the other ``Daemon`` keyword arguments."""
    return Daemon(
        config,
        source=source,
        outputs=outputs,
        pin_factory=pin_factory,
        notifier=notifier,
        clock=clock,
        **parts,
    )


def open_outputs(config: Config) -> list[Output]:
    """The outputs ``config`` enables, one per output plugin (stdout JSON lines, MQTT, the
    operator console, and any a package adds), in the order the plugins were found."""
    context = output_context(config)
    outputs: list[Output] = []
    for name, plugin in plugins().items():
        section = getattr(config, name)
        if plugin.enabled(section):
            output = plugin.build(section, context)
            if output is not None:  # one that cannot start says why in the log, not a stop
                outputs.append(output)
    return outputs


def open_snapshots(config: Config) -> SnapshotStore | None:
    snap = config.snapshots
    if not snap.enabled:
        return None
    store = SnapshotStore(
        config.snapshot_dir(),
        max_count=snap.max_count,
        max_bytes=snap.max_bytes,
        max_age_s=snap.max_age_s,
        min_free_bytes=snap.min_free_bytes,
        jpeg_quality=snap.jpeg_quality,
    )
    store.prune()
    return store

