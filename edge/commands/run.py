"""``pi-inspect run [--config FILE]``: the inspection daemon (systemd runs this), with every
station of the config (``[stations.<name>]``; none: one station) in one process.

Signals are handled here, not in the Daemon: SIGTERM/SIGINT set the stop event (clean
shutdown: LEDs off, open defects ended, outputs flushed), SIGHUP asks for a reload of config
and bundle (a bad new bundle is refused and the old one keeps running).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="TOML config (default: built-in defaults)"
    )
    parser.add_argument(
        "--source", metavar="URI", help="override source.uri (camera index, URL, file, folder)"
    )
    parser.add_argument("--bundle", metavar="DIR", help="override model.bundle")


def install_signal_handlers(stop: threading.Event, reload: Callable[[], None]) -> dict[int, object]:
    """SIGTERM/SIGINT -> stop, SIGHUP -> reload. Returns the previous handlers."""
    previous: dict[int, object] = {}

    def on_stop(signum: int, _frame: object) -> None:
        stop.set()

    def on_hup(signum: int, _frame: object) -> None:
        reload()

    for sig, handler in (
        (signal.SIGTERM, on_stop),
        (signal.SIGINT, on_stop),
        (signal.SIGHUP, on_hup),
    ):
        previous[sig] = signal.signal(sig, handler)
    return previous


def run(args: argparse.Namespace) -> int:
    from functools import partial

    from pi_inspect.edge import preflight
    from pi_inspect.edge.config import load_config, with_overrides
    from pi_inspect.edge.daemon.cell import Cell, label_station_logs
    from pi_inspect.edge.sdnotify import Notifier

    overrides = partial(with_overrides, source=args.source, bundle=args.bundle)
    config = overrides(load_config(args.config))
    preflight.check(config)
    stop = threading.Event()
    with Notifier.from_env() as notifier:
        cell = Cell(config, config_path=args.config, overrides=overrides, notifier=notifier)
        if len(cell.stations) > 1:
            label_station_logs()
        previous = install_signal_handlers(stop, cell.request_reload)
        try:
            cell.run(stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 1 if cell.failed else 0  # a station that failed: systemd's Restart=on-failure
