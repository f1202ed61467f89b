"""``pi-inspect label SOURCE --out DIR``: label video frames (or images) in the browser.

A folder pulled by ``pi-inspect pull`` (``samples.csv`` in it or its parent) opens in
uncertainty order, each frame showing the model's or the operator's labels as a suggestion.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

DEFAULT_LABELS = "good,error,break,length"  # seed 001


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        type=Path,
        help="video file or folder of images (a pulled DEST/images: suggestions from "
        "samples.csv, most uncertain first)",
    )
    parser.add_argument("--labels", default=DEFAULT_LABELS, help=f"label names ({DEFAULT_LABELS})")
    parser.add_argument("--out", type=Path, required=True, help="output folder (only one written)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--keys", default=None, help="toggle key per label, e.g. g,e,b,l")
    parser.add_argument(
        "--absent",
        default="",
        metavar="LABELS",
        help="labels that alarm when absent, e.g. a 'pitch ok' label (default: none)",
    )
    parser.add_argument(
        "--never",
        default="",
        metavar="LABELS",
        help="labels that never alarm, e.g. good (default: none; every other label alarms "
        "when present)",
    )
    parser.add_argument(
        "--meaning",
        action="append",
        default=[],
        metavar="LABEL=TEXT",
        help="what a label means, e.g. length='stitch pitch is 2 mm' (repeatable)",
    )
    parser.add_argument(
        "--mode",
        choices=("multilabel", "multiclass"),
        default="multilabel",
        help="multilabel: DIR/labels.csv; multiclass: one class per frame in DIR/<class>/",
    )
    parser.add_argument(
        "--station-config",
        type=Path,
        default=None,
        help="show (and save) frames cut to this station's source.roi/rotate/hflip/vflip",
    )


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.errors import ConfigError, SourceError
    from pi_inspect.edge.label.server import LabelServer
    from pi_inspect.edge.label.session import LabelSession, assign_keys
    from pi_inspect.edge.label.sources import open_frames, with_suggestions
    from pi_inspect.edge.label.store import ClassFolderStore, TableStore, check_labels
    from pi_inspect.edge.stop_signals import on_stop_signals

    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    check_labels(labels)
    keys = assign_keys(labels, args.keys)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port number")
    frames = open_frames(args.source)
    if args.station_config:
        from pi_inspect.edge.label.sources import ViewedFrames
        from pi_inspect.edge.view import station_view

        frames = ViewedFrames(frames, station_view(args.station_config))
    try:
        frames, suggestions = with_suggestions(frames, args.source, labels)
        declared = _declare(args, labels)  # once the source opened: nothing written before
        store_type = TableStore if args.mode == "multilabel" else ClassFolderStore
        store = store_type(args.out, labels)
        session = LabelSession(frames, store, keys, args.mode, suggestions)
        try:
            server = LabelServer(session, args.port)
        except OSError as exc:
            raise SourceError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
        with server, on_stop_signals(server.request_stop):
            shown = ", ".join(f"{key}={label}" for key, label in keys.items())
            print(f"labelling {len(frames)} frames of {args.source} into {args.out}")
            print(f"label meanings: {declared}")
            if suggestions:
                print(f"{len(suggestions)} frames with suggestions, the most uncertain first")
            print(
                f"keys: {shown} (saved at once), Enter or a accept and next, n next, "
                "p previous, s save, q quit"
            )
            print(f"open {server.url}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C the handler did not see
                server.serve_forever()
    finally:
        frames.close()
    print(f"stopped; labels in {args.out}")
    return 0


def _names(text: str) -> set[str]:
    return {name.strip() for name in text.split(",") if name.strip()}


def _declare(args: argparse.Namespace, labels: tuple[str, ...]) -> str:
    """Write OUT/dataset.toml (what each label means); one already there is kept."""
    from pi_inspect.edge.data.meanings import (
        DECLARATION,
        LabelMeaning,
        read_declaration,
        write_declaration,
    )
    from pi_inspect.edge.errors import ConfigError

    absent, never = _names(args.absent), _names(args.never)
    meaning: dict[str, str] = {}
    for item in args.meaning:
        label, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--meaning {item!r}: write LABEL=TEXT")
        meaning[label.strip()] = text.strip()
    unknown = sorted((absent | never | set(meaning)) - set(labels))
    if unknown:
        raise ConfigError(f"--absent/--never/--meaning name unknown label(s) {unknown}")
    if absent & never:
        raise ConfigError(f"label(s) {sorted(absent & never)} both --absent and --never")
    path = args.out / DECLARATION
    if path.is_file():
        read_declaration(path, labels)  # a declaration for other labels is an error, now
        return f"{path} (kept)"
    meanings = {
        label: LabelMeaning(
            "absent" if label in absent else "never" if label in never else "present",
            meaning.get(label, ""),
        )
        for label in labels
    }
    return str(write_declaration(args.out, meanings))
