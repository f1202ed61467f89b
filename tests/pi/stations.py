"""Two stations in one ``pi-inspect run`` on the Pi's software stack.

Station ``a`` watches a rendered seam with a thread break, station ``b`` one with a wrong stitch
length, each on its own mock pins. The check passes when each station inspected every frame of
its own video and raised exactly its own video's defect, under its own name.

    python tests/pi/stations.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

FRAMES = 90
VIDEOS = {"a": (3, {"break"}), "b": (5, {"length"})}  # station -> (render seed, its defects)
PINS = {"a": (17, 27, 22), "b": (5, 6, 13)}


def config(out: Path) -> Path:
    lines = [f'state_dir = "{out / "state"}"']
    for name, (green, red, amber) in PINS.items():
        lines += [
            f"[stations.{name}.source]", f'uri = "{out / name}.mp4"', 'kind = "file"',
            f"[stations.{name}.gpio]", 'pin_factory = "mock"',
            f"green = {green}", f"red = {red}", f"amber = {amber}",
        ]  # fmt: skip
    path = out / "stations.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from pi_inspect.edge.synth import render_video

    args.out.mkdir(parents=True, exist_ok=True)
    for name, (seed, labels) in VIDEOS.items():
        truth = render_video(args.out / f"{name}.mp4", frames=FRAMES, seed=seed)
        if {o.label for o in truth.occurrences} != labels:
            print(f"station {name}: the rendered video is not the one this check expects", file=sys.stderr)
            return 1
    run = subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", "run", "-c", str(config(args.out))],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    (args.out / "run.log").write_text(run.stderr)
    if run.returncode != 0:
        print(f"pi-inspect run exited {run.returncode}:\n{run.stderr[-2000:]}", file=sys.stderr)
        return 1
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    problems = []
    for name, (_seed, labels) in VIDEOS.items():
        stats = [x for x in lines if x.get("type") == "stats" and x.get("station") == name]
        frames = stats[-1]["frames"] if stats else 0
        raised = {x["label"] for x in lines if x.get("kind") == "start" and x.get("station") == name}
        print(f"station {name}: {frames} of {FRAMES} frames inspected, defects raised: {sorted(raised)}")
        if frames != FRAMES:
            problems.append(f"station {name} inspected {frames} of {FRAMES} frames")
        if raised != labels:
            problems.append(f"station {name} raised {sorted(raised)}, its video holds {sorted(labels)}")
    strays = [x for x in lines if "station" in x and x["station"] not in VIDEOS]
    if strays:
        problems.append(f"{len(strays)} lines name no station of the config")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
