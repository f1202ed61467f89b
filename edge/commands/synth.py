"""``pi-inspect synth``: render a synthetic seam data set, a seam video, or a contact sheet."""

from __future__ import annotations

import argparse
import logging
import time

from pi_inspect.edge.errors import ConfigError, PiInspectError

log = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """``"128x96"`` -> ``(128, 96)`` (width, height)."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 128x128, not {text!r}") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"size {text!r} out of range (16..4096 per side)")
    return w, h


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="DIR", help="write DIR/images/*.png, labels.csv, boxes.csv"
    )
    parser.add_argument("--count", type=int, default=1000, help="number of stills")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--good-only",
        action="store_true",
        help="render --count good stills, the seed's first good ones (training data for "
        "--task anomaly)",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        default=None,
        metavar="WxH",
        help="output size",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: one per CPU core)"
    )
    parser.add_argument(
        "--video", metavar="FILE", help="also render an mp4 of a seam moving under the camera"
    )
    parser.add_argument("--frames", type=int, default=450, help="video frames")
    parser.add_argument("--fps", type=float, default=15.0, help="video frame rate")
    parser.add_argument(
        "--contact-sheet",
        metavar="PNG",
        help="write a 4x4 contact sheet of the first 16 stills with their labels",
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except OSError as exc:  # a folder or file we cannot create: one line, no traceback
        raise PiInspectError(f"cannot write output: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    if not (args.out or args.video or args.contact_sheet):
        raise ConfigError("nothing to do: give --out DIR, --video FILE and/or --contact-sheet PNG")
    if args.out and args.count < 1:
        raise ConfigError("--count must be >= 1")
    if args.video and args.frames < 1:
        raise ConfigError("--frames must be >= 1")
    if args.out:
        from pi_inspect.edge.synth.dataset import generate_dataset

        size = args.size or (128, 128)
        start = time.monotonic()
        summary = generate_dataset(
            args.out, args.count, args.seed, size, args.workers, good_only=args.good_only
        )
        freq = ", ".join(
            f"{k} {summary.frequency(k):.0%}" for k in ("good", "error", "break", "length")
        )
        print(
            f"wrote {len(summary.rows)} images {size[0]}x{size[1]} to {args.out} in "
            f"{time.monotonic() - start:.1f} s ({freq})"
        )
    if args.video:
        from pi_inspect.edge.synth.video import render_video

        size = args.size or (320, 240)
        start = time.monotonic()
        truth = render_video(args.video, args.frames, args.seed, size, args.fps)
        elapsed = time.monotonic() - start
        print(
            f"wrote {args.video}: {args.frames} frames {size[0]}x{size[1]} in {elapsed:.1f} s "
            f"({args.frames / max(elapsed, 1e-9):.0f} frames/s), "
            f"{len(truth.occurrences)} occurrences"
        )
    if args.contact_sheet:
        import cv2

        from pi_inspect.edge.synth.contact import contact_sheet
        from pi_inspect.edge.synth.still import render_still

        size = args.size if (args.size and not args.video) else (128, 128)
        samples = [render_still(args.seed, i, size) for i in range(16)]
        sheet = contact_sheet(samples)
        if not cv2.imwrite(args.contact_sheet, sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
            raise OSError(f"cannot write {args.contact_sheet}")
        print(f"wrote {args.contact_sheet}")
    return 0
