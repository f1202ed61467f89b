"""Shared pytest fixtures. Keep each fixture family in its own section."""

from __future__ import annotations

import os

# Deterministic, quiet TensorFlow where a test uses it; no effect on edge-only tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")
