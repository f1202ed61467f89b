"""``pi-inspect promote --config FILE``: the shadow candidate becomes the model in service, if
its shadow record, the labelled samples and its golden set allow it (``pi_inspect.edge.promote``)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the station's config file")
    parser.add_argument(
        "--force", action="store_true",
        help="promote past the shadow gate (never past the golden set); the daemon then expects "
        "the alarm rate the line showed under the model it replaces",
    )  # fmt: skip
    parser.add_argument("--no-reload", action="store_true", help="switch without reloading the service")
    parser.add_argument("--service", default="pi-inspect", help="systemd service to reload")
    parser.add_argument(
        "--station", metavar="NAME", help="which station of a config with [stations] (required "
        "when it has several)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.commands.deploy import _reloader
    from pi_inspect.edge.config import load_config
    from pi_inspect.edge.errors import ConfigError
    from pi_inspect.edge.promote import models_dir, promote

    stations = load_config(args.config).station_configs()
    name = args.station or (next(iter(stations)) if len(stations) == 1 else None)
    if name not in stations:
        known = ", ".join(stations)
        raise ConfigError(
            f"say which station to promote: --station NAME ({known})"
            if name is None
            else f"no station {name!r} in {args.config} (stations: {known})"
        )
    config = stations[name]
    reload, why = _reloader(args)
    result = promote(config, force=args.force, reload=reload)
    print(f"promoted {result.current} (previous: {result.previous or 'none'}); {why}")
    for note in result.notes:
        print(note)
    if result.expected_alarm_rate is not None:
        print(
            f"the station watches the next {config.shadow.watch_frames} frames for an alarm rate "
            f"near {result.expected_alarm_rate:.3f} and rolls back by itself if it is not"
        )
    print(f"roll back by hand: pi-inspect deploy --rollback {models_dir(config)}")
    return 0
