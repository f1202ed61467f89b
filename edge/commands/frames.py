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


def run(args: argparse.Namespace) -> int:
    from edge.data.frames import extract_frames

    written = extract_frames(
        args.video, args.out, every=args.every, start=args.start, max_frames=args.max
    )
    print(f"wrote {len(written)} frames to {args.out}")
    return 0
