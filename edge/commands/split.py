"""``pi-inspect split DATA --out DIR``: train/valid/test tables with whole groups per split, or
(``--by time``) each recording cut into time blocks with a gap at every cut."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", type=Path, help="lookup table CSV, folder with labels.csv, or class folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for train/valid/test.csv")
    parser.add_argument("--valid", type=float, default=0.2, help="validation fraction")
    parser.add_argument("--test", type=float, default=0.1, help="test fraction")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--by",
        choices=("group", "time"),
        default="group",
        help="group: whole recordings per split; time: cut each recording into time blocks "
        "(one recording is enough)",
    )
    parser.add_argument(
        "--gap",
        type=int,
        default=None,
        metavar="FRAMES",
        help="--by time: frames left clear at each cut (default: 3 steps between labelled "
        "frames, e.g. 15 for frames --every 5)",
    )
    parser.add_argument(
        "--blocks",
        type=int,
        default=None,
        metavar="N",
        help="--by time: most blocks per held-out split and recording, spread over it "
        "(default: 3)",
    )


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.data.blocks import BLOCKS, recording_gaps
    from pi_inspect.edge.data.meanings import meanings_for, write_declaration
    from pi_inspect.edge.data.split import write_split
    from pi_inspect.edge.data.table import read_dataset, read_table
    from pi_inspect.edge.errors import ConfigError

    if args.by != "time" and (args.gap is not None or args.blocks is not None):
        raise ConfigError("--gap and --blocks apply to --by time only")
    ds = read_dataset(args.data)
    meanings, declared = meanings_for(args.data, ds.labels)  # checked before writing anything
    gaps = recording_gaps(ds, args.gap) if args.by == "time" else {}  # checked before writing
    written = write_split(
        ds,
        args.out,
        valid=args.valid,
        test=args.test,
        seed=args.seed,
        by=args.by,
        gap=args.gap,
        blocks=BLOCKS if args.blocks is None else args.blocks,
    )
    if declared is not None:  # the split tables keep the data set's label meanings
        print(f"label meanings: {write_declaration(args.out, meanings)}")
    kept = 0
    for name, path in written.items():
        part = read_table(path, task=ds.task)
        positives = ", ".join(
            f"{label}={int(n)}" for label, n in zip(part.labels, part.y.sum(axis=0), strict=True)
        )
        print(
            f"{name}: {len(part)} images, {len(set(part.sources))} groups ({positives}) -> {path}"
        )
        kept += len(part)
    if gaps:
        low, high = min(gaps.values()), max(gaps.values())
        span = f"{low}" if low == high else f"{low}-{high}"
        print(
            f"time blocks: {len(gaps)} recording(s), gap {span} frames; "
            f"{len(ds) - kept} images at the cuts left out"
        )
    return 0
