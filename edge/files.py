"""Files written atomically (a temporary file renamed into place) keep the user's umask.

``tempfile.mkstemp`` creates its file 0600 whatever the umask; a CSV or JSON a user asked for
should be as readable as any file their shell would create: ``0666 & ~umask``.
"""

from __future__ import annotations

import os


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
