"""The daemon arm the throughput benches share: the real daemon on a video file, outputs,
snapshots and GPIO off, the same loaded classifier run after run.

    from daemon_arm import KeptOpen, daemon_for, run_daemon
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


class KeptOpen:
    """The same loaded classifier for every run: the daemon closes its model when a run ends."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def close(self) -> None:
        pass


def daemon_for(
    video: Path, clf, *, queue: int = 4, source_factory: Callable[[], Any] | None = None
):
    """The daemon over ``video`` (or the source ``source_factory`` builds) with ``clf``; its
    file source applies back-pressure, so every frame is inferred."""
    from edge.config import parse_config
    from edge.daemon import Daemon

    settings = {
        "source": {"kind": "file", "uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"enabled": False},
        "output": {"stdout": False},
        "pipeline": {"drop": "block", "queue": queue},
    }
    kept = KeptOpen(clf)
    return Daemon(
        parse_config(settings), outputs=[], source_factory=source_factory,
        classifier_loader=lambda _m: kept,
    )  # fmt: skip


def run_daemon(video: Path, clf, *, queue: int = 4):
    """``daemon_for(video, clf)`` run until the file ends; its ``RunSummary``."""
    return daemon_for(video, clf, queue=queue).run(threading.Event())
