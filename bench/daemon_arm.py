"""The daemon arm the throughput benches share: the real daemon on a video file, outputs,
snapshots and GPIO off, the same loaded classifier run after run.

    from daemon_arm import KeptOpen, bare_pipeline, daemon_for, run_daemon
"""

from __future__ import annotations

import queue
import threading
import time
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
    from pi_inspect.edge.config import parse_config
    from pi_inspect.edge.daemon import Daemon

    settings = {
        "source": {"kind": "file", "uri": str(video)},
        "gpio": {"enabled": False},
        "snapshots": {"enabled": False},
        "stdout": {"enabled": False},
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


def bare_pipeline(
    open_source: Callable[[], Any], clf, *, clock: Callable[[], float] = time.monotonic
) -> tuple[int, float]:
    """The daemon's two stages and nothing else: one thread reads the source and makes the
    model input (``frame.prepare``), a 4-deep queue, the caller predicts. (frames, seconds of
    ``clock``: wall time for throughput, ``time.process_time`` for CPU per frame.)"""
    items: queue.Queue = queue.Queue(4)
    size = clf.input_size

    def capture() -> None:
        source = open_source()
        source.open()
        while (frame := source.read()) is not None:
            items.put(frame.prepare(size))
        source.close()
        items.put(None)

    t0 = clock()
    thread = threading.Thread(target=capture)
    thread.start()
    n = 0
    while (rgb := items.get()) is not None:
        clf.predict(rgb, with_features=False)
        n += 1
    thread.join()
    return n, clock() - t0
