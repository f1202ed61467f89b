"""Score parity between the workstation (x86) and the emulated Pi (arm64).

On the host, ``write`` renders synthetic seam stills as PNG (lossless, so both sides read the
same pixels) and records the bundle's scores for them with the host's runtime. In the arm64
root, ``compare`` scores the same files with the Pi's runtime (LiteRT, or the legacy
tflite-runtime) and fails when any score differs by more than the tolerance, or when the
scores no longer tell the stills apart (what a wrongly emulated cpu produces).

    python3 tests/pi/scores.py write STILLS [--bundle DIR] [--count N]
    python3 tests/pi/scores.py compare STILLS [--bundle DIR] [--backend NAME] [--tol 0.02]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

SIZE = (320, 240)  # the demo's frame size: preprocessing (the resize) is part of the parity


def _bundle(arg: str | None) -> Path:
    from pi_inspect.edge.bundle import default_bundle_dir

    return Path(arg) if arg else default_bundle_dir()


def _scores(bundle: Path, stills: list[Path], backend: str) -> tuple[str, list[list[float]]]:
    import cv2

    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.runtime import load_classifier

    with load_classifier(bundle, backend=backend) as clf:
        out = []
        for path in stills:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise SystemExit(f"scores: cannot read {path}")
            out.append(clf.predict(prepare(frame, clf.input_size), with_features=False)
                       .scores.tolist())
        return clf.backend, out


def write(args: argparse.Namespace) -> int:
    import cv2

    from pi_inspect.edge.synth.still import render_still

    args.stills.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(args.count):
        path = args.stills / f"still-{i:03d}.png"
        cv2.imwrite(str(path), render_still(args.seed, i, SIZE).image)
        paths.append(path)
    backend, scores = _scores(_bundle(args.bundle), paths, "auto")
    reference = {
        "machine": platform.machine(),
        "backend": backend,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "stills": [p.name for p in paths],
        "scores": scores,
    }
    (args.stills / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"scores: {len(paths)} stills, reference from {backend} on {platform.machine()}")
    return 0


def compare(args: argparse.Namespace) -> int:
    reference = json.loads((args.stills / "reference.json").read_text())
    paths = [args.stills / name for name in reference["stills"]]
    backend, scores = _scores(_bundle(args.bundle), paths, args.backend)
    ref = np.asarray(reference["scores"], dtype=np.float64)
    got = np.asarray(scores, dtype=np.float64)
    diff = np.abs(got - ref)
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    where = f"{reference['stills'][worst[0]]} label {worst[1]}"
    line = (
        f"{backend} on {platform.machine()} vs {reference['backend']} on "
        f"{reference['machine']}: {len(paths)} stills, max |diff| {diff.max():.4f} ({where})"
    )
    spread_ref = float(ref.std(axis=0).max())
    spread_got = float(got.std(axis=0).max())
    if diff.max() > args.tol:
        print(f"FAIL score parity: {line} > {args.tol}", file=sys.stderr)
        return 1
    if spread_ref > 0.05 and spread_got < 0.1 * spread_ref:
        print(f"FAIL score parity: every still scores the same here ({line})", file=sys.stderr)
        return 1
    print(f"OK   score parity: {line} <= {args.tol}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scores.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("stills", type=Path)
    w.add_argument("--bundle")
    w.add_argument("--count", type=int, default=24)
    w.add_argument("--seed", type=int, default=11)
    c = sub.add_parser("compare")
    c.add_argument("stills", type=Path)
    c.add_argument("--bundle")
    c.add_argument("--backend", default="auto")
    c.add_argument("--tol", type=float, default=0.02)
    args = parser.parse_args(argv)
    return write(args) if args.command == "write" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
