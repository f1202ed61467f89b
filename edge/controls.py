"""Camera controls from the config (``[source.controls]``): exposure, gain, white balance, focus.

A real station locks exposure and focus so a defect looks the same at 8 am and at 4 pm. The
same keys drive picamera2 (libcamera controls, pi_inspect.edge.picamera) and V4L2 USB cameras (OpenCV
``CAP_PROP_*``, here) where the driver offers them; a control a driver refuses is logged once
and the camera runs on (a station never gives up over a knob).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from pi_inspect.edge.section import Section

log = logging.getLogger(__name__)

AwbMode = Literal["auto", "incandescent", "tungsten", "fluorescent", "indoor", "daylight", "cloudy"]


class ControlsConfig(Section):
    """Unset keys leave the camera's own automatic behaviour alone."""

    exposure_us: Annotated[int, Field(ge=1, le=10_000_000)] | None = None  # fixed exposure time
    analogue_gain: Annotated[float, Field(ge=1.0, le=64.0)] | None = None  # picamera2 only
    # Let auto exposure settle this long after the camera opens, then lock what it chose.
    lock_exposure_after_s: Annotated[float, Field(gt=0, le=60)] | None = None
    awb: AwbMode | None = None  # white balance mode (picamera2), "auto" also on V4L2
    # Manual white balance (red, blue gains), picamera2.
    colour_gains: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    white_balance_k: Annotated[int, Field(ge=1000, le=12000)] | None = None  # V4L2 manual WB
    focus: Literal["auto", "continuous", "manual"] | None = None
    lens_position: Annotated[float, Field(ge=0)] | None = None  # dioptres (picamera2), driver units
    # (min, max) frame time, picamera2.
    frame_duration_us: Annotated[list[int], Field(min_length=2, max_length=2)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ControlsConfig:
        if self.lock_exposure_after_s is not None and (
            self.exposure_us is not None or self.analogue_gain is not None
        ):
            raise PydanticCustomError(
                "exclusive",
                "lock_exposure_after_s locks what auto exposure chose: leave "
                "exposure_us and analogue_gain unset, or drop it",
            )
        if sum(v is not None for v in (self.awb, self.colour_gains, self.white_balance_k)) > 1:
            raise PydanticCustomError("exclusive", "set one of awb, colour_gains, white_balance_k")
        if self.lens_position is not None and self.focus not in (None, "manual"):
            raise PydanticCustomError("exclusive", 'lens_position needs focus = "manual"')
        if self.frame_duration_us is not None:
            low, high = self.frame_duration_us
            if not 100 <= low <= high <= 10_000_000:
                raise PydanticCustomError(
                    "order", "frame_duration_us: (min, max) with 100 <= min <= max <= 10000000"
                )
        if self.colour_gains is not None and not all(0 < g <= 32 for g in self.colour_gains):
            raise PydanticCustomError("range", "colour_gains: each gain in (0, 32]")
        return self

    @property
    def manual_focus(self) -> bool:
        return self.focus == "manual" or self.lens_position is not None


# V4L2 through OpenCV: V4L2_CID_EXPOSURE_AUTO takes 1 for manual, 3 for aperture priority (auto);
# V4L2_CID_EXPOSURE_ABSOLUTE counts 100 us units. OpenCV passes both values through unchanged.
V4L2_EXPOSURE_MANUAL = 1
V4L2_EXPOSURE_AUTO = 3


def v4l2_settings(controls: ControlsConfig) -> list[tuple[str, float]]:
    """The (``CAP_PROP_*`` name, value) pairs that apply ``controls`` to a V4L2 camera."""
    out: list[tuple[str, float]] = []
    if controls.exposure_us is not None:
        out.append(("CAP_PROP_AUTO_EXPOSURE", V4L2_EXPOSURE_MANUAL))
        out.append(("CAP_PROP_EXPOSURE", max(1, round(controls.exposure_us / 100))))
    if controls.awb == "auto":
        out.append(("CAP_PROP_AUTO_WB", 1))
    if controls.white_balance_k is not None:
        out.append(("CAP_PROP_AUTO_WB", 0))
        out.append(("CAP_PROP_WB_TEMPERATURE", controls.white_balance_k))
    if controls.focus in ("auto", "continuous"):
        out.append(("CAP_PROP_AUTOFOCUS", 1))
    if controls.manual_focus:
        out.append(("CAP_PROP_AUTOFOCUS", 0))
        if controls.lens_position is not None:
            out.append(("CAP_PROP_FOCUS", controls.lens_position))
    return out


def apply_v4l2(cap: Any, controls: ControlsConfig, name: str) -> list[str]:
    """Set ``controls`` on an open ``cv2.VideoCapture``; returns (and logs) what it refused."""
    import cv2

    refused = []
    for prop, value in v4l2_settings(controls):
        if not cap.set(getattr(cv2, prop), float(value)):
            refused.append(prop)
    ignored = [
        key
        for key in ("analogue_gain", "colour_gains", "frame_duration_us")
        if getattr(controls, key) is not None
    ]
    if controls.awb not in (None, "auto"):
        ignored.append("awb")
    if refused:
        log.warning("%s does not offer %s; running with its own setting", name, ", ".join(refused))
    if ignored:
        log.warning("%s: %s apply to picamera2 only", name, ", ".join(ignored))
    return refused


def lock_v4l2_exposure(cap: Any, name: str) -> bool:
    """Freeze the exposure auto exposure has settled on (V4L2); False if the driver refuses."""
    import cv2

    current = cap.get(cv2.CAP_PROP_EXPOSURE)
    ok = bool(cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)) and bool(
        cap.set(cv2.CAP_PROP_EXPOSURE, current)
    )
    if ok:
        log.info("%s: exposure locked at %g (100 us units)", name, current)
    else:
        log.warning("%s does not let its exposure be locked", name)
    return ok
