"""Inside the emulated Pi: what the service venv runs on, and whether apt's numpy extensions
still import beside it. Writes the versions as JSON (for the "Tested on" table).

The venv is made with --system-site-packages, so apt's modules (picamera2 and simplejpeg on a
Pi; python3-bottleneck stands in for them in a plain Debian root) import with the *venv's*
numpy. On Bookworm they are built against numpy 1.24, and a numpy 2 in the venv breaks them:
that is why systemd/constraints-bookworm.txt pins numpy<2.

    python tests/pi/stack.py --release bookworm|trixie --out FILE.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import io
import json
import platform
import sys
from pathlib import Path

# Compiled against Debian's numpy, found through --system-site-packages.
APT_NUMPY_EXTENSIONS = ("bottleneck",)


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    problems = []

    import cv2
    import numpy as np

    info = {
        "release": args.release,
        "debian": Path("/etc/debian_version").read_text().strip(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_from": str(Path(np.__file__).parent),
        "opencv": cv2.__version__,
        "litert": version("ai-edge-litert"),
        "tflite_runtime": version("tflite-runtime"),
        "gpiozero": version("gpiozero"),
    }
    for key, value in info.items():
        print(f"  {key:<15} {value}")
    if args.release == "bookworm" and int(np.__version__.split(".")[0]) >= 2:
        problems.append(
            f"numpy {np.__version__} in the Bookworm venv: Debian's picamera2/simplejpeg are "
            "built against numpy 1.24 (systemd/constraints-bookworm.txt pins numpy<2)"
        )
    for name in APT_NUMPY_EXTENSIONS:
        try:
            # numpy prints its own traceback on stderr before an ABI mismatch raises; the
            # FAIL line below says it in one line instead
            with contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - an ABI mismatch raises ImportError or worse
            first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
            problems.append(
                f"apt's {name} (a numpy C extension, like picamera2's simplejpeg) does not "
                f"import beside the venv's numpy {np.__version__}: {first}"
            )
        else:
            print(f"  {name:<15} {getattr(module, '__version__', '?')} (apt) imports")
    if info["machine"] != "aarch64":
        problems.append(f"machine is {info['machine']}, not aarch64")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=1) + "\n")
    for problem in problems:
        print(f"FAIL stack: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
