"""``pi-inspect frames VIDEO --out DIR --every N``: video -> seed-named PNG frames."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="video file (mp4, avi, ...)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG frames")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th frame")
    parser.add_argument("--start", type=int, default=0, help="first frame index")
    parser.add_argument("--max", type=int, default=None, help="stop after M frames")
    parser.add_argument(
        "--station-config",
        type=Path,
        default=None,
        help="cut frames to this station's source.roi/rotate/hflip/vflip",
    )


def run(args: argparse.Namespace) -> int:
    from pi_inspect.edge.data.frames import extract_frames
    from pi_inspect.edge.view import station_view

    view = station_view(args.station_config) if args.station_config else None
    written = extract_frames(
        args.video, args.out, every=args.every, start=args.start, max_frames=args.max, view=view
    )
    print(f"wrote {len(written)} frames to {args.out}")
    return 0
