"""``pi-inspect fleet status``: every station on the broker (and every one the inventory names
that is not there) with its version, bundle, health and alarm rate.

Exit status: 0 when every station is ok, 1 when one is not (fault, stale, offline, stopped,
missing), 2 when the broker cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="status: the table of stations"
    )
    status = sub.add_parser(
        "status",
        help="a table of every station seen on the broker",
        formatter_class=parser.formatter_class,
    )
    status.add_argument("--broker", default="localhost", help="HOST or HOST:PORT of the broker")
    status.add_argument("--prefix", default="pi-inspect", help="the stations' [mqtt] prefix")
    status.add_argument(
        "--inventory", type=Path, help="file of device ids (one a line) that should be there"
    )
    status.add_argument("--wait", type=float, default=2.0, help="seconds to listen for reports")
    status.add_argument(
        "--stale",
        type=float,
        default=60.0,
        help="an online station with no report this long is stale",
    )
    status.add_argument("--username", help="broker user name")
    status.add_argument("--password-file", type=Path, help="file holding the broker password")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.fleet.status import BrokerUnreachable, collect, read_inventory

    host, _, port = args.broker.partition(":")
    inventory = read_inventory(args.inventory) if args.inventory else []
    password = args.password_file.read_text().strip() if args.password_file else None
    try:
        views = collect(
            host, int(port or 1883), args.prefix, args.wait, inventory, args.username, password
        )
    except BrokerUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    rows = [_row(view, now, args.stale) for view in views.values()]
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        _table(rows)
    return 0 if all(row["condition"] == "ok" for row in rows) else 1


def _row(view, now: float, stale_s: float) -> dict:
    report = view.report or {}
    identity, health = report.get("identity") or {}, report.get("health") or {}
    bundle, shadow = report.get("bundle") or {}, report.get("shadow") or {}
    return {
        "device": view.device,
        "condition": view.condition(now, stale_s),
        "availability": view.availability,
        "in_inventory": view.expected,
        "version": identity.get("version"),
        "hostname": identity.get("hostname"),
        "board": identity.get("board"),
        "bundle": f"{bundle['name']} {bundle['version']}" if bundle else None,
        "shadow": f"{shadow['name']} {shadow['version']}" if shadow else None,
        "fault": health.get("fault"),
        "fps": health.get("fps"),
        "cpu_temp_c": health.get("cpu_temp_c"),
        "spool_depth": health.get("spool_depth"),
        "alarm_rate": report.get("alarm_rate"),
        "last_seen_s": round(now - report["at"], 1) if "at" in report else None,
        "problems": view.problems,
    }


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
