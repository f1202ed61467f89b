"""The ``[shadow]`` config section (``pi_inspect.edge.daemon.shadow`` runs it)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pi_inspect.edge.collect import Quota
from pi_inspect.edge.config_checks import PathText


class ShadowConfig(Quota):
    """A candidate bundle run beside the model in service, for comparison only."""

    bundle: PathText | None = None  # the candidate (unset: no shadow)
    every: Annotated[int, Field(ge=1, le=1000)] = 1  # score every Nth inspected frame
    collect: bool = True  # keep frames where the two disagree, within the quotas below
    # the gate `pi-inspect promote` checks against the shadow record
    min_frames: Annotated[int, Field(ge=1)] = 1000  # frames the candidate must have scored
    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.95  # share of frames with one verdict
    # after a promotion: frames whose alarm rate must stay in the band the shadow period measured
    watch_frames: Annotated[int, Field(ge=20, le=1_000_000)] = 500
