"""Print the Pi's dependency set from pyproject.toml, one requirement a line, sorted.

tests/pi/roots.sh hashes this (with the Bookworm constraints and install.sh's apt package
list) into the key of the cached "installed" root: a change to the project's code or to any
other part of pyproject.toml (tools, test settings, the train/dev extras) leaves the key, and
so the cached root, alone; the check then reinstalls only the project into a throwaway overlay.

    python3 tests/pi/depset.py PYPROJECT
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomllib

EXTRAS = ("edge", "tflite")  # what systemd/install.sh installs: [edge], or [tflite] on Bookworm


def depset(pyproject: dict) -> list[str]:
    project = pyproject["project"]
    lines = [f"build-system {r}" for r in pyproject.get("build-system", {}).get("requires", [])]
    lines.append(f"requires-python {project.get('requires-python', '')}")
    lines += [f"dependencies {r}" for r in project.get("dependencies", [])]
    extras = project.get("optional-dependencies", {})
    lines += [f"{extra} {r}" for extra in EXTRAS for r in extras.get(extra, [])]
    return sorted(lines)


if __name__ == "__main__":
    print("\n".join(depset(tomllib.loads(Path(sys.argv[1]).read_text()))))
