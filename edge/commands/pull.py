"""``pi-inspect pull SOURCE DEST``: a station's samples into a data set folder, and off the station."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        help="the station's snapshot folder: [user@]host:/var/lib/pi-inspect/snapshots (rsync "
        "over SSH), or a local path",
    )
    parser.add_argument("dest", help="data set folder (images/, samples.csv, labels.csv)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the samples on the station (default: remove "
        "each once its copy is verified)"
    )
    parser.add_argument(
        "--local", action="store_true", help="SOURCE is a local path even if it looks like host:path"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pi_inspect.edge.pull import pull

    result = pull(args.source, Path(args.dest), keep=args.keep, local=args.local)
    for line in result.skipped:
        print(f"skipped {line}")
    kept = "kept on the station" if args.keep else "removed from the station"
    print(
        f"pulled {len(result.added)} new sample(s) into {args.dest}/images "
        f"({result.already} already there; {kept}); {result.labelled} with the operator's "
        f"right labels in {args.dest}/labels.csv"
    )
    if result.added:
        print(f"label the rest: pi-inspect label {args.dest}/images --out <labelled folder>")
    return 0
