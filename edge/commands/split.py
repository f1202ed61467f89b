"""``pi-inspect split DATA --out DIR``: train/valid/test tables with whole groups per split."""

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


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.data.meanings import meanings_for, write_declaration
    from pi_inspect.edge.data.split import write_split
    from pi_inspect.edge.data.table import read_dataset, read_table

    ds = read_dataset(args.data)
    meanings, declared = meanings_for(args.data, ds.labels)  # checked before writing anything
    written = write_split(ds, args.out, valid=args.valid, test=args.test, seed=args.seed)
    if declared is not None:  # the split tables keep the data set's label meanings
        print(f"label meanings: {write_declaration(args.out, meanings)}")
    for name, path in written.items():
        part = read_table(path, task=ds.task)
        positives = ", ".join(
            f"{label}={int(n)}" for label, n in zip(part.labels, part.y.sum(axis=0), strict=True)
        )
        print(
            f"{name}: {len(part)} images, {len(set(part.sources))} groups ({positives}) -> {path}"
        )
    return 0
