"""The ``[console]`` config section: the operator's web page on the station.

Pure validation, no I/O: the credentials file is read when the console starts, so
``check-config`` works on a machine without it. The one rule that needs no disk: a console that
listens on anything but loopback (127.0.0.1 or ::1) must name a credentials file.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from pi_inspect.edge.section import Section

LOOPBACK = ("127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Only the two loopback addresses themselves count: any other address (127.0.0.2 or a
    LAN address, or a name that may resolve anywhere) is treated as reachable by others."""
    try:
        return str(ipaddress.ip_address(host)) in LOOPBACK
    except ValueError:
        return False


class ConsoleConfig(Section):
    """Where the console listens, who may use it, how fast the live view runs."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8421
    # One line: the token an operator types once per browser (or sends as a bearer token).
    credentials: str | None = Field(default=None, validate_default=True)
    allow_readonly_view: bool = False  # on a non-loopback address: view without the token
    fps: Annotated[float, Field(gt=0, le=15)] = 5.0  # live view frame rate while someone watches
    review_dir: str = "review"  # "this verdict is wrong" items, relative to state_dir
    review_max_count: Annotated[int, Field(ge=1, le=100_000)] = 500
    review_max_bytes: Annotated[int, Field(ge=1_000_000)] = 100_000_000  # oldest items go beyond
    review_min_free_bytes: Annotated[int, Field(ge=0)] = 100_000_000  # kept free: items refused
    review_max_per_minute: Annotated[int, Field(ge=1, le=600)] = 30  # items a minute; more refused
    events_kept: Annotated[int, Field(ge=10, le=10_000)] = 500  # recent events held in memory

    @field_validator("credentials")
    @classmethod
    def _needed_off_loopback(cls, value: str | None, info) -> str | None:
        host = info.data.get("host")
        if info.data.get("enabled") and host is not None and not is_loopback(host) and not value:
            raise PydanticCustomError(
                "required",
                "required when console.host ({host}) is not 127.0.0.1 or ::1",
                {"host": host},
            )
        return value
