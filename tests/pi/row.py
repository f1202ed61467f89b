"""One "Tested on" row (markdown) from what tests/pi/inside.sh left in its output folder.

    python3 tests/pi/row.py OUT_DIR RELEASE CPU EXIT_STATUS
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path

PI_OS = {"bookworm": "Raspberry Pi OS 12 (Bookworm)", "trixie": "Raspberry Pi OS 13 (Trixie)"}
BOARD = {"cortex-a72": "Cortex-A72 (Pi 4)", "cortex-a76": "Cortex-A76 (Pi 5)"}


def demo(log: Path) -> str:
    if not log.is_file():
        return "not run"
    text = log.read_text()
    found = [re.search(rf"^  {key} +([\d.]+) \((\d+/\d+)\)", text, re.M)
             for key in ("recall", "precision")]
    if not all(found):
        return "no summary"
    (r, rn), (p, pn) = (m.groups() for m in found)  # type: ignore[union-attr]
    return f"recall {r} ({rn}), precision {p} ({pn})"


def parity(path: Path) -> str:
    m = re.search(r"max \|diff\| ([\d.]+)", path.read_text()) if path.is_file() else None
    return f"{m.group(1)}" if m else "not run"


def main(out: Path, release: str, cpu: str, status: str) -> int:
    stack_file = out / "stack.json"
    stack = json.loads(stack_file.read_text()) if stack_file.is_file() else {}
    legacy_file = out / "stack-tflite-runtime.json"
    runtime = f"LiteRT {stack.get('litert', '?')}"
    demo_text = demo(out / "demo.log")
    parity_text = parity(out / "parity.txt")
    if legacy_file.is_file():
        legacy = json.loads(legacy_file.read_text())
        runtime += f"; tflite-runtime {legacy.get('tflite_runtime')} (numpy {legacy.get('numpy')})"
        demo_text += f"; tflite-runtime: {demo(out / 'demo-tflite-runtime.log')}"
        parity_text += f"; {parity(out / 'parity-tflite-runtime.txt')}"
    verdict = "pass" if status == "0" else "FAIL"
    cells = [
        f"{PI_OS.get(release, release)}, Debian {stack.get('debian', '?')} arm64",
        stack.get("python", "?"),
        stack.get("numpy", "?"),
        stack.get("opencv", "?"),
        runtime,
        BOARD.get(cpu, cpu),
        demo_text,
        parity_text,
        f"{verdict} {date.today().isoformat()}",
    ]
    print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), *sys.argv[2:5]))
