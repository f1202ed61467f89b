"""Several inspection stations in one daemon: two cameras on one Pi (``[stations.<name>]``).

Each station is a ``Daemon`` of its own (capture thread, model slot, inspector, loop, LEDs and
pins) running in its own thread; they share one hub (``pi_inspect.edge.daemon.hub``): one MQTT
connection, one console, one PLC server. Faults stay local: a station whose camera is gone is
amber on its own LEDs and in its own state while the others inspect on. The service manager's
watchdog is fed only while every running station's loop turns (``SharedNotifier``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pi_inspect.edge.config import Config
from pi_inspect.edge.daemon.app import Daemon, open_outputs
from pi_inspect.edge.daemon.hub import Hub
from pi_inspect.edge.daemon.loop import RunSummary
from pi_inspect.edge.daemon.protocols import Notifier, NullNotifier, Output
from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.sources import FrameSource

log = logging.getLogger(__name__)


def station_threads(stations: int, cores: int | None = None) -> int:
    """Interpreter threads per station when its ``model.num_threads`` is unset: the cores
    left after one per station's capture thread, shared evenly (4 cores, 2 stations: 1 each;
    one station: all cores but one, as before)."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, (cores - stations) // stations)


def pick_station(config: Config, name: str, first: bool, stations: int) -> Config:
    """Station ``name``'s config out of the whole ``config``: its interpreter threads
    budgeted, and the fleet followed by the first station only. ConfigError when the station
    is gone (a reload cannot remove a running station)."""
    found = config.station_configs()
    if name not in found:
        raise ConfigError(
            f"station {name!r} is no longer in the config",
            [f"stations.{name}: removing or renaming a station takes a restart"],
        )
    station = found[name]
    update: dict[str, Any] = {}
    if station.model.num_threads is None and stations > 1:  # one: the runtime's default
        threads = station_threads(stations)
        update["model"] = station.model.model_copy(update={"num_threads": threads})
    if not first and station.fleet.enabled:
        update["fleet"] = station.fleet.model_copy(update={"enabled": False})
    return station.model_copy(update=update) if update else station


THREAD_PREFIXES = ("station-", "capture-")  # the threads of a station, named after it


class StationLogs(logging.Filter):
    """Prefixes each log line written on a station's threads with ``[<station>]``, so a
    device of several stations says which one a fault or a reload is about."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.threadName or ""
        for prefix in THREAD_PREFIXES:
            if name.startswith(prefix) and not getattr(record, "station", None):
                record.station = name[len(prefix) :]
                record.msg = f"[{record.station}] {record.msg}"
        return True


def label_station_logs() -> None:
    """Install ``StationLogs`` on the root logger's handlers (the CLI's, once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, StationLogs) for f in handler.filters):
            handler.addFilter(StationLogs())


class SharedNotifier:
    """One service manager for several stations: READY once every station is ready, the
    watchdog fed once every running station has pinged since the last feed, one STATUS line
    naming each station's."""

    def __init__(self, notifier: Notifier, names: Sequence[str]) -> None:
        self._notifier = notifier
        self._lock = threading.Lock()
        self._running = set(names)
        self._pinged: set[str] = set()
        self._ready: set[str] = set()
        self._reloading: set[str] = set()
        self._status = dict.fromkeys(names, "starting")
        self._stopping = False

    def station(self, name: str) -> Notifier:
        return _StationNotifier(self, name)

    def finished(self, name: str) -> None:
        """``name`` stopped (its source ended): the watchdog no longer waits for it."""
        with self._lock:
            self._running.discard(name)
            self._ready.add(name)
        self._feed()

    def _line(self) -> str:
        if len(self._status) == 1:  # one station: its own words, as before
            return next(iter(self._status.values()))
        return "; ".join(f"{name}: {text}" for name, text in self._status.items())

    def ready(self, name: str, status: str | None) -> None:
        """READY=1 once every station is ready, and again once every reload has ended."""
        with self._lock:
            self._status[name] = status or self._status[name]
            first_time = name not in self._ready
            self._ready.add(name)
            all_ready = len(self._ready) == len(self._status)
            reloaded = name in self._reloading
            self._reloading.discard(name)
            line, reloading = self._line(), bool(self._reloading)
        if all_ready and (first_time or (reloaded and not reloading)):
            self._notifier.ready(status=line)
        elif all_ready:
            self._notifier.status(line)

    def watchdog(self, name: str) -> None:
        with self._lock:
            self._pinged.add(name)
        self._feed()

    def _feed(self) -> None:
        with self._lock:
            due = bool(self._running) and self._running <= self._pinged
            if due:
                self._pinged.clear()
        if due:
            self._notifier.watchdog()

    def status(self, name: str, text: str) -> None:
        with self._lock:
            self._status[name] = text
            line = self._line()
        self._notifier.status(line)

    def reloading(self, name: str, status: str | None) -> None:
        """RELOADING=1 when the first station starts reloading."""
        with self._lock:
            first = not self._reloading
            self._reloading.add(name)
            several = len(self._status) > 1
        if first:
            self._notifier.reloading(status=f"{name}: {status}" if several and status else status)

    def stopping(self, name: str, status: str | None) -> None:
        with self._lock:
            first, self._stopping = not self._stopping, True
        if first:
            self._notifier.stopping(status=status)


class _StationNotifier:
    """What one station's loop sees as its service manager."""

    def __init__(self, shared: SharedNotifier, name: str) -> None:
        self._shared, self._name = shared, name

    def ready(self, status: str | None = None) -> None:
        self._shared.ready(self._name, status)

    def watchdog(self) -> None:
        self._shared.watchdog(self._name)

    def reloading(self, status: str | None = None) -> None:
        self._shared.reloading(self._name, status)

    def stopping(self, status: str | None = None) -> None:
        self._shared.stopping(self._name, status)

    def status(self, text: str) -> None:
        self._shared.status(self._name, text)


class Cell:
    """Every station of ``config`` in one process. Build it, then call ``run(stop_event)``.

    ``sources`` / ``pin_factory`` may name a part per station (a mapping by station name);
    ``parts`` are the other ``Daemon`` keyword arguments (loaders, clocks), given to each.
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: str | Path | None = None,
        overrides: Callable[[Config], Config] | None = None,
        sources: Mapping[str, FrameSource] | None = None,
        source_factories: Mapping[str, Callable[[], FrameSource]] | None = None,
        outputs: Sequence[Output] | None = None,
        pin_factory: Any = None,
        notifier: Notifier | None = None,
        **parts: Any,
    ) -> None:
        self.config = config
        names = tuple(config.station_configs())
        self.notifier = SharedNotifier(notifier or NullNotifier(), names)
        self.hub = Hub()  # its outputs open when the stations start
        self._outputs = outputs
        self.stations: dict[str, Daemon] = {}
        for i, name in enumerate(names):

            def pick(whole: Config, name: str = name, first: bool = i == 0) -> Config:
                whole = overrides(whole) if overrides is not None else whole
                return pick_station(whole, name, first, len(names))

            factory = pin_factory.get(name) if isinstance(pin_factory, Mapping) else pin_factory
            station = Daemon(
                pick(config),
                config_path=config_path,
                overrides=pick if config_path is not None else None,
                source=(sources or {}).get(name),
                source_factory=(source_factories or {}).get(name),
                pin_factory=factory,
                notifier=self.notifier.station(name),
                name=name,
                hub=self.hub,
                **parts,
            )
            self.hub.attach(name, station.receive)
            self.stations[name] = station
        self.stop_event = threading.Event()
        self.failed: list[str] = []  # stations whose run ended in an error (a bug): exit 1

    def request_reload(self) -> None:
        """Signal-handler safe: every station reloads on its next iteration."""
        for station in self.stations.values():
            station.request_reload()

    def run(self, stop: threading.Event | None = None) -> dict[str, RunSummary]:
        """Run every station until ``stop`` is set (or every source has ended); the shared
        outputs close once the last station is done. Never raises on a fault."""
        stop = stop if stop is not None else self.stop_event
        summaries: dict[str, RunSummary] = {}
        # a ConfigError here (an unreadable credentials file, say) is the caller's one line
        self.hub.open(self._outputs if self._outputs is not None else open_outputs(self.config))

        def run_one(name: str, station: Daemon) -> None:
            try:
                summaries[name] = station.run(stop)
            except Exception:  # a station's bug must not take the others down
                log.exception("station %s stopped", name)
                self.failed.append(name)
                summaries[name] = station.summary
            finally:
                self.notifier.finished(name)

        threads = [
            threading.Thread(target=run_one, args=(name, st), name=f"station-{name}", daemon=True)
            for name, st in self.stations.items()
        ]
        try:
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        finally:
            stop.set()
            for thread in threads:
                if thread.ident is not None:
                    thread.join(timeout=30.0)
            self.hub.close()
        return summaries
