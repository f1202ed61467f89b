"""The base of every config section: strict types, frozen, unknown keys are errors.

Strict means no silent coercion (``"3"`` is not an int, ``1`` is not ``true``); the few types a
TOML file can only spell as text (paths, secrets) are parsed from text explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, SecretStr, Strict

ConfigPath = Annotated[Path, Strict(False)]  # a TOML string
Secret = Annotated[SecretStr, Strict(False)]  # a TOML string, never printed


class Section(BaseModel):
    """One config section (``[source]``, ``[mqtt.tls]``, ...)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
