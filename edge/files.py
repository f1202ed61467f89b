"""Files written atomically (a temporary file renamed into place) keep the user's umask.

``tempfile.mkstemp`` creates its file 0600 whatever the umask; a CSV or JSON a user asked for
should be as readable as any file their shell would create: ``0666 & ~umask``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may run)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(fd: int) -> None:
    """Give an open (temporary) file the mode a plain ``open(..., "w")`` would have had."""
    os.fchmod(fd, 0o666 & ~current_umask())


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically: a reader sees the old file or the new one,
    never half of one. Raises ``OSError``; no temporary file is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        follow_umask(fd)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
