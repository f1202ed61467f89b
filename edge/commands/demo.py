"""`pi-inspect demo`: the daemon on the built-in bundle and a freshly rendered seam video."""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path

from pi_inspect.edge.demo import ConsoleOutput, LampView, as_anomaly, match_events, read_occurrences


def configure(parser: argparse.ArgumentParser) -> None:
    # One minute of seam at 15 FPS (about 14 defects): enough that recall and precision mean
    # something. Over seeds 1-30 the demo bundle finds 98.0% of defects at 99.0% precision
    # (docs/results.md); seed 1 is simply the first.
    parser.add_argument("--frames", type=int, default=900, help="video length")
    parser.add_argument("--seed", type=int, default=1, help="synthetic video seed")
    parser.add_argument("--size", default="320x240", help="video size WxH")
    parser.add_argument("--fps", type=float, default=15.0, help="video frame rate")
    parser.add_argument("--bundle", help="model bundle (default: the built-in demo bundle)")
    parser.add_argument(
        "--anomaly",
        action="store_true",
        help="judge the video with the built-in good-only anomaly bundle (or --bundle, an "
        "anomaly bundle): every defect kind counts as one 'anomaly'",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the video and snapshots, kept (default: a temporary folder, removed "
        "at the end unless --keep)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play the video at its frame rate, as a camera would deliver it (default: as fast "
        "as the model runs)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (default: remove it)"
    )
    parser.add_argument("--tolerance", type=int, default=3, help="frames of slack when matching")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(
            f"pi-inspect demo: error: --size must look like 320x240, not {text!r}"
        ) from None
    return w, h


def run(args: argparse.Namespace) -> int:
    import tempfile
    import time

    started = time.monotonic()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return _demo(args, args.out, started)
    out_dir = Path(tempfile.mkdtemp(prefix="pi-inspect-demo-"))
    try:
        return _demo(args, out_dir, started)
    finally:
        if args.keep:
            print(f"  kept {out_dir}")
        else:
            shutil.rmtree(out_dir, ignore_errors=True)


def _demo(args: argparse.Namespace, out_dir: Path, started: float) -> int:
    import logging
    import signal
    import time

    from gpiozero.pins.mock import MockFactory

    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon
    from pi_inspect.edge.synth import render_video

    video = out_dir / "seam.mp4"
    size = _size(args.size)
    view = LampView(sys.stdout)
    view.say(
        f"pi-inspect demo: {args.frames} frames of synthetic seam ({size[0]}x{size[1]}, "
        f"{args.fps:g} FPS, seed {args.seed}) -> {video}"
    )
    render_video(video, frames=args.frames, seed=args.seed, size=size, fps=args.fps)
    truth = read_occurrences(video.with_name(f"{video.stem}.occurrences.csv"))
    if args.anomaly:
        truth = as_anomaly(truth)
    view.say(
        f"  ground truth: {len(truth)} defects ("
        + ", ".join(f"{o.label} {o.first_frame}-{o.last_frame}" for o in truth)
        + ")"
    )
    view.say("  LEDs: [G] green = running, OK   [R] red = an alarm condition holds   [A] amber = fault")
    settings: dict = {
        "source": {"kind": "file", "uri": str(video), "realtime": args.realtime},
        "gpio": {"pin_factory": "mock", "red_mode": "hold"},
        "snapshots": {"dir": str(out_dir / "snapshots")},
        "stdout": {"enabled": False},
            "output": {"stats_interval_s": 5.0},
        "pipeline": {"drop": "block", "queue": 4},
    }
    if args.bundle:
        settings["model"] = {"bundle": args.bundle}
    elif args.anomaly:
        from pi_inspect.edge.bundle import anomaly_bundle_dir

        settings["model"] = {"bundle": str(anomaly_bundle_dir())}
    config = parse_config(settings)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    daemon_log = logging.getLogger("pi_inspect.edge.daemon")
    level = daemon_log.level
    daemon_log.setLevel(logging.WARNING)  # the demo prints its own lines; faults still show
    try:
        daemon = Daemon(
            config,
            outputs=[ConsoleOutput(view, args.fps)],
            pin_factory=MockFactory(),
            on_lamps=view.show,
        )
        summary = daemon.run(stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        daemon_log.setLevel(level)
    score = match_events(list(summary.events), truth, args.tolerance)
    snapshots = sorted((out_dir / "snapshots").glob("*.heat.jpg"))
    view.say("")
    view.say("summary")
    view.say(f"  model       {summary.model or 'none loaded'}")
    view.say(
        f"  frames      {summary.frames} inferred of {summary.frames_read} read, "
        f"{summary.dropped} dropped"
    )
    view.say(
        f"  speed       {summary.fps:.0f} FPS, latency p50 {summary.latency_p50_ms:.1f} ms, "
        f"p95 {summary.latency_p95_ms:.1f} ms"
    )
    view.say(f"  defects     {score.events} events for {score.occurrences} in the ground truth")
    for label in sorted({o.label for o in truth} | {e.label for e in summary.events}):
        n_truth = sum(o.label == label for o in truth)
        n_events = sum(e.label == label for e in summary.events)
        view.say(f"    {label:<8}  {n_events} found, {n_truth} true")
    view.say(f"  recall      {score.recall:.3f} ({score.matched}/{score.occurrences})")
    view.say(f"  precision   {score.precision:.3f} ({score.matched}/{score.events})")
    view.say(
        f"  on defect   {score.frame_precision:.3f} of alarmed frames lie on a true defect "
        f"({score.alarmed_on_defect}/{score.alarmed_frames})"
    )
    for occ in score.missed:
        view.say(f"    missed       {occ.label} frames {occ.first_frame}-{occ.last_frame}")
    for label, first, last in score.false_alarms:
        view.say(f"    false alarm  {label} frames {first}-{last}")
    where = out_dir / "snapshots" if (args.out or args.keep) else "the temporary folder (removed; --keep keeps it)"
    view.say(f"  snapshots   {len(snapshots)} heat maps in {where}")
    view.say(f"  wall time   {time.monotonic() - started:.1f} s")
    if summary.faults and summary.frames == 0:
        return 1
    return 0
