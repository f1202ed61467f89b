"""The picamera2 adapter's configuration and controls, and V4L2 controls through OpenCV.

No camera exists on the machines this suite runs on, and libcamera's virtual camera does not work
with picamera2 0.3, so these tests check the calls the adapter makes against picamera2's
documented API (picamera2/picamera2.py and the manual: ``Picamera2(camera_num)``,
``create_video_configuration(main=..., lores=..., transform=..., controls=...)``, ``configure``,
``start``, ``capture_request()`` -> ``make_array("main"/"lores")`` + ``release()``,
``capture_metadata()``, ``set_controls``; libcamera's ``Transform(hflip, vflip)`` and the
``AfModeEnum``/``AwbModeEnum``/``AfTriggerEnum`` control enums) with a recording double. The
double serves ``main`` as 3-byte BGR ("RGB888") and ``lores`` as planar YUV420 (I420), the
layouts picamera2 documents for those formats.
"""

from __future__ import annotations

import enum
import types

import cv2
import numpy as np
import pytest

from pi_inspect.edge.config import SourceConfig, parse_config
from pi_inspect.edge.controls import ControlsConfig, apply_v4l2, v4l2_settings
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.picamera import PiCamera2Source, lores_size
from pi_inspect.edge.sources import OpenCVSource, make_source
from pi_inspect.edge.view import View


def scene(size: tuple[int, int]) -> np.ndarray:
    """Left half dark, right half bright, at ``size`` (w, h)."""
    img = np.full((size[1], size[0], 3), 30, np.uint8)
    img[:, size[0] // 2 :] = 220
    return img


class Request:
    def __init__(self, camera: RecordingCamera) -> None:
        self.camera = camera
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        stream = self.camera.config.get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        self.camera.calls.append(("make_array", name))
        image = scene(stream["size"])
        if stream["format"] == "YUV420":
            return cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        return image

    def release(self) -> None:
        self.released = True
        self.camera.calls.append(("release",))


class RecordingCamera:
    """Records every call; refuses a lores larger than main, as libcamera does."""

    instances: list[RecordingCamera] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[tuple] = [("Picamera2", camera_num)]
        self.config: dict = {}
        self.requests: list[Request] = []
        RecordingCamera.instances.append(self)

    def create_video_configuration(self, main={}, lores=None, transform=None, controls={}):  # noqa: B006 - picamera2's own signature
        self.calls.append(("create_video_configuration", main, lores, transform, controls))
        if lores is not None and (
            lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]
        ):
            raise RuntimeError("lores stream dimensions may not exceed main stream")
        return {"main": dict(main), "lores": dict(lores) if lores else None,
                "transform": transform, "controls": dict(controls)}

    def configure(self, config) -> None:
        self.calls.append(("configure",))
        self.config = config

    def start(self) -> None:
        self.calls.append(("start",))

    def capture_request(self) -> Request:
        request = Request(self)
        self.requests.append(request)
        return request

    def capture_metadata(self) -> dict:
        return {"ExposureTime": 12000, "AnalogueGain": 2.5, "ColourGains": (1.9, 1.6)}

    def set_controls(self, controls: dict) -> None:
        self.calls.append(("set_controls", controls))

    def stop(self) -> None:
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))


class Transform:
    def __init__(self, hflip: int = 0, vflip: int = 0) -> None:
        self.hflip, self.vflip = hflip, vflip


libcamera = types.SimpleNamespace(
    Transform=Transform,
    controls=types.SimpleNamespace(
        AfModeEnum=enum.IntEnum("AfModeEnum", "Manual Auto Continuous", start=0),
        AfTriggerEnum=enum.IntEnum("AfTriggerEnum", "Start Cancel", start=0),
        AwbModeEnum=enum.IntEnum(
            "AwbModeEnum",
            "Auto Incandescent Tungsten Fluorescent Indoor Daylight Cloudy Custom",
            start=0,
        ),
    ),
)
picamera2 = types.SimpleNamespace(Picamera2=RecordingCamera)
MODULES = (picamera2, libcamera)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def configured(source: PiCamera2Source) -> tuple[RecordingCamera, tuple]:
    source.open()
    camera = RecordingCamera.instances[-1]
    call = next(c for c in camera.calls if c[0] == "create_video_configuration")
    return camera, call


def test_lores_stream_is_just_above_the_model_input_with_mains_aspect():
    assert lores_size((640, 480), (96, 96), View()) == (128, 96)
    assert lores_size((1280, 720), (224, 224), View()) == (512, 288)
    # a quarter-width region needs 4x the pixels across; rotation swaps what is needed
    assert lores_size((1280, 960), (96, 96), View(roi=(0.0, 0.0, 0.25, 1.0))) == (384, 288)
    assert lores_size((640, 480), (96, 48), View(rotate=90)) == (128, 96)
    assert lores_size((640, 480), (600, 400), View()) is None  # no smaller than main: none
    assert lores_size((640, 480), None, View()) is None


def test_configuration_asks_for_lores_main_controls_camera_number_and_flips():
    controls = ControlsConfig(
        exposure_us=8000,
        analogue_gain=2.0,
        awb="daylight",
        focus="manual",
        lens_position=3.5,
        frame_duration_us=[33333, 33333],
    )
    source = PiCamera2Source(
        1280, 960, camera_num=1, controls=controls, view=View(hflip=True),
        model_size=(96, 96), modules=MODULES,
    )
    camera, (_, main, lores, transform, ctrl) = configured(source)
    assert camera.camera_num == 1
    assert main == {"size": (1280, 960), "format": "RGB888"}
    assert lores == {"size": (128, 96), "format": "YUV420"}
    assert (transform.hflip, transform.vflip) == (1, 0)
    af, awb = libcamera.controls.AfModeEnum, libcamera.controls.AwbModeEnum
    assert ctrl == {
        "ExposureTime": 8000,
        "AnalogueGain": 2.0,
        "AeEnable": False,
        "AwbEnable": True,
        "AwbMode": awb.Daylight,
        "AfMode": af.Manual,
        "LensPosition": 3.5,
        "FrameDurationLimits": (33333, 33333),
    }
    assert [c[0] for c in camera.calls][-2:] == ["configure", "start"]
    source.close()
    assert [c[0] for c in camera.calls][-2:] == ["stop", "close"]


def test_model_reads_lores_and_the_snapshot_reads_main():
    source = PiCamera2Source(
        640, 480, view=View(roi=(0.5, 0.0, 0.5, 1.0), hflip=True),
        model_size=(32, 32), modules=MODULES,
    )
    camera, _ = configured(source)
    frame = source.read()
    assert camera.requests[-1].released  # the buffer goes straight back to the camera
    rgb = frame.prepare((32, 32))
    assert rgb.shape == (32, 32, 3) and rgb.mean() > 200  # right half: bright (flip is the ISP's)
    assert frame.pixels.at_least((64, 32)).shape == (96, 128, 3)  # lores, converted from I420
    assert frame.image.shape == (480, 320, 3)  # main, cropped to the region
    assert ("make_array", "lores") in camera.calls and ("make_array", "main") in camera.calls


def test_auto_focus_sweeps_once_and_manual_white_balance_uses_colour_gains():
    controls = ControlsConfig(focus="auto", colour_gains=[1.8, 1.4])
    source = PiCamera2Source(controls=controls, model_size=(96, 96), modules=MODULES)
    _, call = configured(source)
    af = libcamera.controls
    assert call[4] == {
        "AwbEnable": False,
        "ColourGains": (1.8, 1.4),
        "AfMode": af.AfModeEnum.Auto,
        "AfTrigger": af.AfTriggerEnum.Start,
    }


def test_exposure_is_locked_at_what_auto_exposure_chose_after_settling():
    clock = Clock()
    source = PiCamera2Source(
        controls=ControlsConfig(lock_exposure_after_s=2.0), modules=MODULES, clock=clock
    )
    camera, call = configured(source)
    assert call[4] == {}  # auto exposure runs first
    source.read()
    assert not [c for c in camera.calls if c[0] == "set_controls"]
    clock.now = 2.5
    source.read()
    source.read()
    locks = [c[1] for c in camera.calls if c[0] == "set_controls"]
    assert locks == [{"AeEnable": False, "ExposureTime": 12000, "AnalogueGain": 2.5}]


def test_a_missing_camera_is_a_source_error_not_a_crash():
    def no_camera(camera_num: int = 0):
        raise IndexError("list index out of range")

    source = PiCamera2Source(modules=(types.SimpleNamespace(Picamera2=no_camera), libcamera))
    with pytest.raises(SourceError, match="cannot open picamera2 camera 0"):
        source.open()


def test_make_source_passes_camera_number_controls_view_and_model_size():
    config = parse_config(
        {"source": {"kind": "picamera2", "camera_num": 1, "rotate": 90, "vflip": True,
                    "controls": {"exposure_us": 4000}}}
    ).source
    source = make_source(config, model_size=(96, 96))
    assert isinstance(source, PiCamera2Source)
    source._modules = MODULES
    camera, (_, _, lores, transform, ctrl) = configured(source)
    assert camera.camera_num == 1 and (transform.hflip, transform.vflip) == (0, 1)
    assert lores["size"] == (128, 96) and ctrl == {"ExposureTime": 4000}
    assert source.read().prepare((96, 96)).shape == (96, 96, 3)


class RecordingCapture:
    """Stands in for cv2.VideoCapture; ``offers`` are the properties its driver accepts."""

    def __init__(self, offers: set[int]) -> None:
        self.offers = offers
        self.sets: list[tuple[int, float]] = []

    def set(self, prop: int, value: float) -> bool:
        self.sets.append((prop, value))
        return prop in self.offers

    def get(self, prop: int) -> float:
        return 157.0


def test_v4l2_controls_map_to_opencv_properties_in_driver_units():
    controls = ControlsConfig(exposure_us=8000, white_balance_k=4500, focus="manual",
                              lens_position=30)
    assert v4l2_settings(controls) == [
        ("CAP_PROP_AUTO_EXPOSURE", 1),
        ("CAP_PROP_EXPOSURE", 80),
        ("CAP_PROP_AUTO_WB", 0),
        ("CAP_PROP_WB_TEMPERATURE", 4500),
        ("CAP_PROP_AUTOFOCUS", 0),
        ("CAP_PROP_FOCUS", 30),
    ]


def test_v4l2_control_the_driver_refuses_is_logged_and_the_camera_runs_on(caplog):
    cap = RecordingCapture({cv2.CAP_PROP_AUTO_EXPOSURE, cv2.CAP_PROP_EXPOSURE})
    refused = apply_v4l2(cap, ControlsConfig(exposure_us=8000, focus="continuous"), "camera 0")
    assert refused == ["CAP_PROP_AUTOFOCUS"]
    assert (cv2.CAP_PROP_EXPOSURE, 80.0) in cap.sets
    assert "does not offer CAP_PROP_AUTOFOCUS" in caplog.text


def test_usb_source_asks_for_mjpg_and_compressed_frames_unless_told_yuyv():
    usb = make_source(SourceConfig(uri="/dev/video0", roi=[0.1, 0.1, 0.5, 0.5]))
    assert isinstance(usb, OpenCVSource) and usb.raw_jpeg and usb._fourcc == "MJPG"
    assert usb.view.roi == (0.1, 0.1, 0.5, 0.5)
    yuyv = make_source(SourceConfig(uri="0", fourcc="YUYV"))
    assert not yuyv.raw_jpeg and yuyv._fourcc == "YUYV"
