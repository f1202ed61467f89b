"""Test doubles for the daemon tests: a scripted classifier, flaky sources, video writers.

The scripted classifier follows the runtime contract (edge/runtime.py) but reads its scores
from the frame colour, so a test decides what the "model" sees by what it draws:
red -> ``error``, green -> ``break``, blue -> ``length`` (low blue = wrong 4 mm pitch).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np

from pi_inspect.edge.data.meanings import from_alarms
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.events import ModelInfo
from pi_inspect.edge.sources import Frame

OK_BGR = (255, 0, 0)  # blue high: length ok, no error, no break
ERROR_BGR = (255, 0, 255)  # + red: error
BREAK_BGR = (255, 255, 0)  # + green: break
WRONG_PITCH_BGR = (0, 0, 0)  # blue low: length alarm


class Prediction:
    def __init__(self, scores: np.ndarray, features: np.ndarray | None) -> None:
        self.scores, self.features = scores, features


class ScriptedClassifier:
    labels = ("good", "error", "break", "length")
    task = "multilabel"
    input_size = (16, 16)
    thresholds = {"good": 0.5, "error": 0.5, "break": 0.5, "length": 0.5}
    alarms = {"error": "above", "break": "above", "length": "below"}
    meanings = from_alarms(labels, alarms)
    has_heatmaps = True

    def __init__(self, sha: str = "a" * 64) -> None:
        self.info = ModelInfo("scripted", "1", sha)
        self.closed = False
        self.calls = 0

    def predict(self, rgb: np.ndarray, with_features: bool = True) -> Prediction:
        if self.closed:
            raise RuntimeError("closed")
        if rgb.shape != (16, 16, 3):
            raise ValueError(f"bad input {rgb.shape}")
        self.calls += 1
        r, g, b = (rgb[..., c].mean() / 255.0 for c in range(3))
        scores = np.array([1.0 - max(r, g), r, g, b], np.float32)
        features = np.ones((4, 4, 2), np.float32) if with_features else None
        return Prediction(scores, features)

    def heatmap(self, prediction: Prediction, label: str) -> np.ndarray:
        return np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)

    def close(self) -> None:
        self.closed = True


def solid(bgr: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> np.ndarray:
    img = np.empty((size[1], size[0], 3), np.uint8)
    img[:] = bgr
    return img


def write_video(path: Path, colours: list[tuple[int, int, int]], fps: float = 30.0) -> Path:
    """A real video OpenCV can decode (MJPG in .avi: robust, frame-exact, truncatable)."""
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (32, 24))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for c in colours:
        writer.write(solid(c))
    writer.release()
    return path


def script(*runs: tuple[tuple[int, int, int], int]) -> list[tuple[int, int, int]]:
    """``script((OK, 10), (ERROR, 5))`` -> the colour of each frame."""
    return [c for colour, n in runs for c in [colour] * n]


class FlakySource:
    """A live source that dies after ``die_after`` frames, refuses ``refusals`` reopens, recovers."""

    live = True
    name = "flaky camera"

    def __init__(
        self, die_after: int, refusals: int, colour=OK_BGR, period_s: float = 0.002
    ) -> None:
        self.die_after, self.refusals, self.colour, self.period_s = (
            die_after,
            refusals,
            colour,
            period_s,
        )
        self.opens = 0
        self.failures = 0
        self._open = False
        self.index = 0
        self._died = False

    def open(self) -> None:
        self.opens += 1
        if self._died and self.failures < self.refusals:
            self.failures += 1
            raise SourceError("no such device /dev/video9")
        self._open = True

    def read(self) -> Frame | None:
        if not self._open:
            raise SourceError("not open")
        if not self._died and self.index >= self.die_after:
            self._died = True
            self._open = False
            raise SourceError("camera unplugged")
        time.sleep(self.period_s)
        frame = Frame(self.index, time.time(), solid(self.colour))
        self.index += 1
        return frame

    def close(self) -> None:
        self._open = False


class ManualClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self._now = start

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class BlockingSource:
    """A live source whose read blocks until released (a hung V4L2 driver)."""

    live = True
    name = "hung camera"

    def __init__(self) -> None:
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        self.release.wait()
        return None

    def close(self) -> None:
        self.release.set()


class RecordingOutput:
    """An Output that keeps everything the daemon publishes."""

    def __init__(self) -> None:
        self.events: list = []
        self.results: list = []
        self.stats: list = []
        self.states: list = []
        self.snapshots: list = []
        self.closed = 0

    def publish_event(self, event) -> None:
        self.events.append(event)

    def publish_result(self, result) -> None:
        self.results.append(result)

    def publish_stats(self, stats) -> None:
        self.stats.append(stats)

    def publish_state(self, state) -> None:
        self.states.append(state)

    def publish_snapshot(self, jpeg: bytes, event) -> None:
        self.snapshots.append((jpeg, event))

    def close(self) -> None:
        self.closed += 1


class CountingNotifier:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def ready(self, status=None) -> None:
        self.calls.append("ready")

    def watchdog(self) -> None:
        self.calls.append("watchdog")

    def reloading(self, status=None) -> None:
        self.calls.append("reloading")

    def stopping(self, status=None) -> None:
        self.calls.append("stopping")

    def status(self, text) -> None:
        self.calls.append("status")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


ODD_BGR = (255, 100, 100)  # blue high, some red and green: the classifier sees nothing wrong


class ScriptedAnomaly:
    """An anomaly model by the same rules as ``ScriptedClassifier``: its score is twice the
    frame's lesser of red and green (``ODD_BGR`` scores 0.78, the classifier's colours 0), its
    map that score in every cell."""

    labels = ("anomaly",)
    task = "anomaly"
    input_size = (16, 16)
    thresholds = {"anomaly": 0.5}
    alarms = {"anomaly": "above"}
    meanings = from_alarms(labels, alarms)
    has_heatmaps = True

    def __init__(self, sha: str = "b" * 64, input_size: tuple[int, int] = (16, 16)) -> None:
        self.info = ModelInfo("scripted-anomaly", "2", sha)
        self.input_size = input_size
        self.closed = False
        self.calls = 0

    def predict(self, rgb: np.ndarray, with_features: bool = True) -> Prediction:
        if self.closed:
            raise RuntimeError("closed")
        self.calls += 1
        r, g = (rgb[..., c].mean() / 255.0 for c in range(2))
        score = min(1.0, 2.0 * min(r, g))
        amap = np.full((4, 4), score, np.float32) if with_features else None
        return Prediction(np.array([score], np.float32), amap)

    def heatmap(self, prediction: Prediction, label: str) -> np.ndarray:
        return prediction.features

    def close(self) -> None:
        self.closed = True


SEAM_GOOD, SEAM_ERROR = 9, 3  # seed-1 stills the demo classifier scores good (anomaly 0.03), error


def seam_still(index: int, speck: bool = False) -> np.ndarray:
    """A rendered 96 px seam (BGR); ``speck``: a white 8x8 cell in its bottom-right corner,
    which the demo classifier passes as good and the tests' anomaly model flags."""
    from pi_inspect.edge.synth.still import render_still

    bgr = render_still(1, index, size=(96, 96)).image.copy()
    if speck:
        bgr[88:96, 88:96] = 255
    return bgr


def write_seam_frames(folder: Path) -> Path:
    """34 PNG frames: good x6, speck x6 (frames 6-11), good x8, error x6 (20-25), good x8."""
    good, speck, error = seam_still(SEAM_GOOD), seam_still(SEAM_GOOD, True), seam_still(SEAM_ERROR)
    frames = [good] * 6 + [speck] * 6 + [good] * 8 + [error] * 6 + [good] * 8
    folder.mkdir()
    for i, bgr in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), bgr)
    return folder
