"""The Raspberry Pi camera through picamera2: a small ``lores`` stream for the model, ``main`` for
snapshots, and the station's locked exposure, white balance and focus.

The ISP scales the sensor image to both streams at once, so the model input costs a YUV420 ->
BGR conversion of a few thousand pixels instead of a resize of the full frame. ``lores`` keeps
the ``main`` stream's aspect ratio (the ISP would stretch it otherwise) and is sized at or just
above what the model needs after the region of interest. Flips are done by libcamera's
``Transform`` in the ISP. picamera2 comes from apt on the Pi and is imported on ``open()``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from pi_inspect.edge.controls import ControlsConfig
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.view import IDENTITY, Frame, View

log = logging.getLogger(__name__)

LORES_ALIGN = 128  # lores width: a multiple of both ISPs' YUV420 row alignment (no row padding)


def lores_size(
    main: tuple[int, int], model_size: tuple[int, int] | None, view: View
) -> tuple[int, int] | None:
    """The smallest lores (w, h) with ``main``'s aspect that covers the model after the view's
    region; None when it would not be smaller than ``main`` (then the model reads ``main``)."""
    if model_size is None:
        return None
    need_w, need_h = view.needed(model_size, main)
    k = max(need_w / main[0], need_h / main[1])
    width = math.ceil(main[0] * k / LORES_ALIGN) * LORES_ALIGN
    height = math.ceil(width * main[1] / main[0] / 2) * 2
    if width >= main[0] or height >= main[1]:
        return None
    return width, height


def camera_controls(controls: ControlsConfig, libcamera: Any) -> dict[str, Any]:
    """libcamera control values for picamera2's ``controls=`` / ``set_controls``."""
    enums = libcamera.controls
    out: dict[str, Any] = {}
    if controls.exposure_us is not None:
        out["ExposureTime"] = controls.exposure_us
    if controls.analogue_gain is not None:
        out["AnalogueGain"] = controls.analogue_gain
    if controls.exposure_us is not None and controls.analogue_gain is not None:
        out["AeEnable"] = False
    if controls.awb is not None:
        out["AwbEnable"] = True
        out["AwbMode"] = getattr(enums.AwbModeEnum, controls.awb.capitalize())
    if controls.colour_gains is not None:
        out["AwbEnable"] = False
        out["ColourGains"] = tuple(controls.colour_gains)
    if controls.manual_focus:
        out["AfMode"] = enums.AfModeEnum.Manual
        if controls.lens_position is not None:
            out["LensPosition"] = controls.lens_position
    elif controls.focus == "continuous":
        out["AfMode"] = enums.AfModeEnum.Continuous
    elif controls.focus == "auto":
        out["AfMode"] = enums.AfModeEnum.Auto
        out["AfTrigger"] = enums.AfTriggerEnum.Start  # one focus sweep when the camera starts
    if controls.frame_duration_us is not None:
        out["FrameDurationLimits"] = tuple(controls.frame_duration_us)
    return out


class LoresPixels:
    """One request's streams: ``lores`` (YUV420) for the model, ``main`` (BGR) for snapshots."""

    def __init__(self, main: np.ndarray, lores_yuv: np.ndarray | None) -> None:
        self._main = main
        self._lores = lores_yuv
        self.size = (int(main.shape[1]), int(main.shape[0]))

    def full(self) -> np.ndarray:
        return self._main

    def at_least(self, size: tuple[int, int]) -> np.ndarray:
        import cv2

        if self._lores is not None:
            height = self._lores.shape[0] * 2 // 3
            width = self._lores.shape[1]
            if width >= size[0] and height >= size[1]:
                return cv2.cvtColor(self._lores, cv2.COLOR_YUV2BGR_I420)
        return self._main


class PiCamera2Source:
    """picamera2 as a ``FrameSource``; ``modules`` = (picamera2, libcamera) for tests."""

    live = True

    def __init__(
        self,
        width: int | None = None,
        height: int | None = None,
        *,
        camera_num: int = 0,
        controls: ControlsConfig | None = None,
        view: View = IDENTITY,
        model_size: tuple[int, int] | None = None,
        modules: tuple[Any, Any] | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.name = f"picamera2 camera {camera_num}"
        self._size = (width or 640, height or 480)
        self._camera_num = camera_num
        self._controls = controls or ControlsConfig()
        self._view = view.without_flips()  # flips happen in the ISP (Transform)
        self._flips = (view.hflip, view.vflip)
        self._model_size = model_size
        self._modules = modules
        self._clock = clock
        self._cam: Any = None
        self._lores: tuple[int, int] | None = None
        self._lock_at: float | None = None
        self._index = 0

    def _import(self) -> tuple[Any, Any]:
        if self._modules is not None:
            return self._modules
        try:
            import libcamera
            import picamera2
        except ImportError:
            raise SourceError(
                "picamera2 is not installed (on the Pi: sudo apt install python3-picamera2)"
            ) from None
        return picamera2, libcamera

    def configuration(self, cam: Any, libcamera: Any) -> dict[str, Any]:
        """The video configuration: main (BGR in memory) + lores (YUV420) + controls + flips."""
        self._lores = lores_size(self._size, self._model_size, self._view)
        # "RGB888" in libcamera is B,G,R in memory: the order OpenCV and prepare() expect.
        main = {"size": self._size, "format": "RGB888"}
        lores = {"size": self._lores, "format": "YUV420"} if self._lores else None
        return cam.create_video_configuration(
            main=main,
            lores=lores,
            transform=libcamera.Transform(hflip=int(self._flips[0]), vflip=int(self._flips[1])),
            controls=camera_controls(self._controls, libcamera),
        )

    def open(self) -> None:
        self.close()
        picamera2, libcamera = self._import()
        try:
            cam = picamera2.Picamera2(self._camera_num)
        except Exception as exc:  # picamera2 raises RuntimeError/IndexError/OSError
            raise SourceError(f"cannot open {self.name}: {exc}") from None
        try:
            cam.configure(self.configuration(cam, libcamera))
            cam.start()
        except Exception as exc:
            self._close(cam)
            raise SourceError(f"cannot start {self.name}: {exc}") from None
        self._cam = cam
        after = self._controls.lock_exposure_after_s
        self._lock_at = self._clock() + after if after is not None else None
        log.info("%s: main %dx%d, lores %s", self.name, *self._size, self._lores or "none")

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError(f"{self.name} is not open")
        try:
            request = self._cam.capture_request()
            try:
                main = request.make_array("main")
                lores = request.make_array("lores") if self._lores else None
            finally:
                request.release()
        except Exception as exc:
            raise SourceError(f"{self.name} read failed: {exc}") from None
        if self._lock_at is not None and self._clock() >= self._lock_at:
            self._lock_at = None
            self._lock_exposure()
        pixels = LoresPixels(np.ascontiguousarray(main[:, :, :3]), lores)
        frame = Frame(self._index, time.time(), pixels=pixels, view=self._view)
        self._index += 1
        return frame

    def _lock_exposure(self) -> None:
        """Freeze the exposure time and gain auto exposure settled on."""
        try:
            meta = self._cam.capture_metadata()
            self._cam.set_controls(
                {
                    "AeEnable": False,
                    "ExposureTime": int(meta["ExposureTime"]),
                    "AnalogueGain": float(meta["AnalogueGain"]),
                }
            )
        except Exception as exc:  # a camera without these controls runs on in auto
            log.warning("%s: exposure not locked: %s", self.name, exc)
            return
        log.info(
            "%s: exposure locked at %d us, gain %.2f",
            self.name,
            meta["ExposureTime"],
            meta["AnalogueGain"],
        )

    @staticmethod
    def _close(cam: Any) -> None:
        try:
            cam.stop()
            cam.close()
        except Exception as exc:  # closing a dead camera must not kill the daemon
            log.debug("picamera2 close: %s", exc)

    def close(self) -> None:
        if self._cam is not None:
            cam, self._cam = self._cam, None
            self._close(cam)
