"""Reading a config file: its TOML as a dict, or one clear line why not."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pi_inspect.edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the edge extra brings tomli there)
    import tomli as tomllib


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file's TOML as a dict; ConfigError (one line) when it cannot be read or parsed."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid config: {file} is not valid TOML", [f"{file}: {exc}"]) from None
    except RecursionError:
        raise ConfigError(
            f"invalid config: {file} is not valid TOML", [f"{file}: nested too deeply"]
        ) from None
    return data
