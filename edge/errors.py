"""One exception root for pi-inspect; every subclass also inherits the builtin it resembles.

Callers can catch ``PiInspectError`` for anything we raise on purpose, or the builtin
(``ValueError``, ``OSError``, ``ImportError``) when they don't know about us.
"""

from __future__ import annotations


class PiInspectError(Exception):
    """Root of every error pi-inspect raises on purpose. Its message is one line for the user."""


class ConfigError(PiInspectError, ValueError):
    """The configuration file is invalid. ``problems`` holds one ``key.path: message`` each."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class BundleError(PiInspectError, ValueError):
    """A model bundle is missing, tampered with, or does not fit this device."""


class DataError(PiInspectError, ValueError):
    """A data set (lookup table, class folders, split) is malformed."""


class SourceError(PiInspectError, OSError):
    """A camera, stream, video or image folder cannot be opened or read."""


class MissingExtraError(PiInspectError, ImportError):
    """A command needs an optional extra (``pip install 'pi-inspect[extra]'``) that is not installed."""


class ConversionError(PiInspectError, RuntimeError):
    """A conversion produced a model we refuse to ship (float ops left, accuracy lost)."""


class DidNotLearn(PiInspectError, RuntimeError):
    """A trained model's validation signal stayed near chance: refused, never shipped.

    ``pi-inspect train`` exits with ``exit_code`` (3) after writing the run for inspection;
    ``pi-inspect convert`` refuses such a run (exit 1)."""

    exit_code = 3
