"""The ``[fleet]`` config section: whether this station follows a desired state published for
it on the broker, and where it may fetch bundles from. Pure validation, no I/O."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pi_inspect.edge.section import ConfigPath, Section


class FleetConfig(Section):
    """Desired state from the workstation (docs/fleet.md). Off unless ``enabled = true``."""

    enabled: bool = False
    url_prefix: str | None = None
    max_bytes: Annotated[int, Field(ge=10_000, le=2_000_000_000)] = 200_000_000
    ca_file: ConfigPath | None = None  # https:// prefixes: the CA that signed the workstation's

    @model_validator(mode="after")
    def _prefix_needed(self) -> FleetConfig:
        prefix = self.url_prefix
        if prefix is not None and not prefix.startswith(("http://", "https://")):
            raise ValueError("url_prefix must start with http:// or https://")
        if self.ca_file is not None and prefix is not None and not prefix.startswith("https://"):
            raise ValueError("ca_file is for an https:// url_prefix")
        if self.enabled and not prefix:
            raise ValueError("url_prefix is required when enabled: bundles come only from there")
        return self
