"""Ctrl-C and SIGTERM as a request to stop, not an exception.

A signal raised as KeyboardInterrupt wherever the main thread happens to be can leave a lock held
and hang the exit, and a shell that starts a command in the background hands it SIGINT ignored,
which Python then never turns into KeyboardInterrupt at all. So the long-running commands
(``label``, ``fleet serve``, ``fleet rollout``) install handlers that call back instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def on_stop_signals(request_stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM call ``request_stop()``; the handlers before it come
    back after. Off the main thread (where signals never arrive) it does nothing."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: request_stop())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
