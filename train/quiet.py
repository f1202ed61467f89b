"""TensorFlow without its start-up chatter: its C++ side writes straight to file descriptor 2.

``TF_CPP_MIN_LOG_LEVEL`` (set by the CLI) hides most of it, but not what absl prints before its
logging is initialised ("All log messages before absl::InitializeLog() ...", "Could not find
cuda drivers ...", "failed call to cuInit" when the devices are first probed) nor the converter's ``fully_quantize: 0, inference_type: 6 ...`` lines. The
CLI imports TensorFlow and runs the converter with descriptor 2 pointed at /dev/null unless
``-v`` was given; Python exceptions still carry every error message.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Iterator


def verbose() -> bool:
    """``-v``: the CLI set the root logger to DEBUG."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def stderr_silenced(enabled: bool = True) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (no-op when not ``enabled``)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    """Import TensorFlow once, quietly unless verbose."""
    if "tensorflow" in sys.modules:
        return
    with stderr_silenced(not verbose()):
        tf = importlib.import_module("tensorflow")
        tf.config.list_physical_devices()  # probes CUDA now ("failed call to cuInit" where none)
