"""``pi-inspect fleet``: every station on the broker (and every one the inventory names that is
not there) with its version, bundle, health and alarm rate.

``status`` prints it once. Exit status: 0 when every station is ok, 1 when one is not (fault,
stale, offline, stopped, missing), 2 when the broker cannot be reached. ``serve`` keeps it live
on a web page on 127.0.0.1 (``--port``) until Ctrl-C; a broker that is away is retried.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

CONNECT_WAIT_S = 5.0  # serve: how long to wait for the broker before saying it is not there


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="status: the table of stations; serve: the live fleet page; rollout: a bundle "
        "ring by ring",
    )
    status = sub.add_parser(
        "status",
        help="a table of every station seen on the broker",
        formatter_class=parser.formatter_class,
    )
    _broker_options(status)
    status.add_argument("--wait", type=float, default=2.0, help="seconds to listen for reports")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    serve = sub.add_parser(
        "serve",
        help="a live web page of every station, on 127.0.0.1",
        formatter_class=parser.formatter_class,
    )
    _broker_options(serve)
    serve.add_argument(
        "--port", type=int, default=8090, help="port of the page on 127.0.0.1 (0: any free port)"
    )
    rollout = sub.add_parser(
        "rollout",
        help="a bundle to the stations ring by ring: shadow, gates, promotion",
        formatter_class=parser.formatter_class,
    )
    _broker_options(rollout)
    rollout.add_argument(
        "bundle", type=Path, nargs="?", help="the bundle folder to roll out (not for --abort)"
    )
    rollout.add_argument(
        "--resume", action="store_true",
        help="continue the interrupted rollout on the broker (BUNDLE: the same bundle)",
    )  # fmt: skip
    rollout.add_argument(
        "--abort", action="store_true",
        help="roll back every station the rollout on the broker touched",
    )  # fmt: skip
    rollout.add_argument("--stations", help="device ids, comma-separated (default: the inventory)")
    rollout.add_argument(
        "--rings", default="1,10%,50%,100%", help="cumulative station counts or shares"
    )
    rollout.add_argument(
        "--serve", default="127.0.0.1:8765",
        help="HOST:PORT the stations fetch the bundle from (their [fleet] url_prefix)",
    )  # fmt: skip
    rollout.add_argument(
        "--tls-cert", type=Path, help="serve the bundle over HTTPS with this certificate chain"
    )
    rollout.add_argument("--tls-key", type=Path, help="the certificate's private key file")
    rollout.add_argument("--soak", type=float, default=60.0, help="seconds in shadow per ring")
    rollout.add_argument("--min-frames", type=int, default=100, help="shadow frames per station")
    rollout.add_argument("--min-agreement", type=float, default=0.95, help="shadow agreement gate")
    rollout.add_argument(
        "--max-alarm-delta", type=float, default=0.05,
        help="how far the candidate's alarm rate may exceed the model in service's",
    )  # fmt: skip
    rollout.add_argument("--apply-timeout", type=float, default=300.0, help="seconds to apply")


def _broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default="localhost", help="HOST or HOST:PORT of the broker")
    parser.add_argument("--prefix", default="pi-inspect", help="the stations' [mqtt] prefix")
    parser.add_argument(
        "--inventory", type=Path, help="file of device ids (one a line) that should be there"
    )
    parser.add_argument(
        "--stale",
        type=float,
        default=60.0,
        help="an online station with no report this long is stale",
    )
    parser.add_argument("--username", help="broker user name")
    parser.add_argument("--password-file", type=Path, help="file holding the broker password")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.errors import ConfigError
    from pi_inspect.edge.fleet.status import read_inventory

    host, _, port_text = args.broker.partition(":")
    if not port_text:
        port = 1883
    elif port_text.isdigit() and 0 < int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ConfigError(f"--broker {args.broker}: the port is not a port number")
    inventory = read_inventory(args.inventory) if args.inventory else []
    password = args.password_file.read_text().strip() if args.password_file else None
    if args.action == "serve":
        return _serve(args, host, port, inventory, password)
    if args.action == "rollout":
        from pi_inspect.edge.fleet.rollout_run import rollout_command

        return rollout_command(args, host, port, inventory, password)
    return _status(args, host, port, inventory, password)


def _status(
    args: argparse.Namespace, host: str, port: int, inventory: list[str], password: str | None
) -> int:
    from pi_inspect.edge.fleet.status import BrokerUnreachable, collect, rollout_lines, rows

    try:
        views, record = collect(
            host, port, args.prefix, args.wait, inventory, args.username, password
        )
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    found = rows(views, now, args.stale)
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
    else:
        _table(found)
        for line in rollout_lines(record, now):
            print(line)
    return 0 if all(row["condition"] == "ok" for row in found) else 1


def _serve(
    args: argparse.Namespace, host: str, port: int, inventory: list[str], password: str | None
) -> int:
    from pi_inspect.edge.errors import ConfigError, SourceError
    from pi_inspect.edge.fleet.server import HOST, FleetServer
    from pi_inspect.edge.fleet.watch import FleetWatch
    from pi_inspect.edge.fleet.web import create_app
    from pi_inspect.edge.stop_signals import on_stop_signals

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number")
    with FleetWatch(host, port, args.prefix, args.username, password) as watch:
        try:
            server = FleetServer(create_app(watch, inventory, args.stale), args.port)
        except OSError as exc:
            raise SourceError(f"cannot listen on {HOST}:{args.port}: {exc.strerror}") from None
        with server, on_stop_signals(server.request_stop):
            server.start()
            if not watch.wait_connected(CONNECT_WAIT_S):
                print(
                    f"warning: broker {watch.address} {watch.error or 'not answering'}; "
                    "retrying while the page runs",
                    file=sys.stderr,
                )
            print(f"fleet page: {server.url} (Ctrl-C stops)", flush=True)
            with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C the handler did not see
                server.wait()
    print("stopped")
    return 0


def _desired(desired: dict | None) -> str:
    """``promote applied``: the last desired state a station was given and how it went."""
    if not desired:
        return "-"
    return f"{desired['mode']} {desired['state']}"


def _table(rows: list[dict]) -> None:
    def show(value, fmt="{}") -> str:
        return "-" if value is None else fmt.format(value)

    head = (
        "DEVICE",
        "STATUS",
        "VERSION",
        "BUNDLE",
        "SHADOW",
        "FPS",
        "TEMP",
        "ALARMS",
        "DESIRED",
        "SEEN",
        "FAULT",
    )
    lines = [head] + [
        (
            r["device"],
            r["condition"],
            show(r["version"]),
            show(r["bundle"]),
            show(r["shadow"]),
            show(r["fps"], "{:.1f}"),
            show(r["cpu_temp_c"], "{:.0f}C"),
            show(r["alarm_rate"] if r["alarm_rate"] is None else 100 * r["alarm_rate"], "{:.1f}%"),
            _desired(r["desired"]),
            show(r["last_seen_s"], "{:.0f}s ago"),
            show(r["fault"] or ("; ".join(r["problems"]) or None)),
        )  # fmt: skip
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head) - 1)]
    for line in lines:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=False))
            + "  "
            + str(line[-1])
        )
    if not rows:
        print("(no station seen on the broker)")
