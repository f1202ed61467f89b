"""The daemon under a real sd_notify socket: READY=1, regular WATCHDOG=1, and silence on a hang.

systemd restarts the service when WATCHDOG=1 stops for WatchdogSec. These tests play systemd:
a bound AF_UNIX datagram socket as NOTIFY_SOCKET, WATCHDOG_USEC set small, and a daemon thread
whose camera read (or inference) blocks on an Event.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pi_inspect.edge.daemon")

from daemon_helpers import ScriptedClassifier  # noqa: E402

from pi_inspect.edge.config import parse_config  # noqa: E402
from pi_inspect.edge.daemon import Daemon  # noqa: E402
from pi_inspect.edge.errors import SourceError  # noqa: E402
from pi_inspect.edge.sdnotify import Notifier  # noqa: E402
from pi_inspect.edge.sources import Frame  # noqa: E402

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s; systemd would kill after 1 s of silence
WATCHDOG_S = WATCHDOG_USEC / 1e6


class GatedSource:
    """A live camera giving a frame every few ms; while ``hang`` is set, read() blocks."""

    live = True
    name = "gated camera"

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()
        self.index = 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.hang.is_set():
            self.release.wait()
        time.sleep(0.005)
        self.index += 1
        image = np.full((24, 32, 3), (255, 0, 0), np.uint8)
        return Frame(index=self.index, timestamp=time.time(), image=image)

    def close(self) -> None:
        pass


class HangingClassifier(ScriptedClassifier):
    """The scripted model, except predict() blocks while ``hang`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = threading.Event()
        self.release = threading.Event()

    def predict(self, rgb, with_features=True):
        if self.hang.is_set():
            self.release.wait()
        return super().predict(rgb, with_features)


class FakeSystemd:
    """Receives notify datagrams on a real socket and timestamps them (monotonic)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.path = path
        self.messages: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode().split("\n")))

    def times_of(self, field: str, since: float = 0.0) -> list[float]:
        return [t for t, lines in list(self.messages) if field in lines and t >= since]

    def wait_for(
        self, field: str, count: int = 1, since: float = 0.0, timeout: float = 20.0
    ) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            times = self.times_of(field, since)
            if len(times) >= count:
                return times
            time.sleep(0.02)
        raise AssertionError(f"{field} x{count} not received; got {self.messages[-5:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def config():
    return parse_config(
        {
            "gpio": {"enabled": False},
            "snapshots": {"enabled": False},
            "stdout": {"enabled": False},
            "pipeline": {"heartbeat_timeout_s": 0.5},
        }
    )


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def start_daemon(systemd: FakeSystemd, source, classifier, tmp_path):
    env = {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    notifier = Notifier.from_env(env)
    daemon = Daemon(
        config().model_copy(update={"state_dir": str(tmp_path / "state")}),
        source=source,
        outputs=[],
        notifier=notifier,
        classifier_loader=lambda _model: classifier,
    )
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread, notifier


def assert_regular_pings(systemd: FakeSystemd, since: float, count: int = 4) -> None:
    times = systemd.wait_for("WATCHDOG=1", count=count, since=since)
    gaps = np.diff(times)
    assert gaps.max() < WATCHDOG_S, f"watchdog gaps {gaps} exceed WatchdogSec {WATCHDOG_S}"


def wait_for_silence(
    systemd: FakeSystemd, since: float, longer_than: float, timeout: float = 20.0
) -> float:
    """Seconds of silence reached: no WATCHDOG=1 for ``longer_than`` after the hang began."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pings = systemd.times_of("WATCHDOG=1", since)
        last = pings[-1] if pings else since
        silence = time.monotonic() - last
        if silence > longer_than:
            return silence
        time.sleep(0.05)
    raise AssertionError(
        f"watchdog kept pinging during the hang: {systemd.times_of('WATCHDOG=1', since)}"
    )


def test_ready_then_regular_watchdog_then_silence_when_the_camera_read_hangs(systemd, tmp_path):
    source = GatedSource()
    stop, thread, notifier = start_daemon(systemd, source, ScriptedClassifier(), tmp_path)
    try:
        ready_at = systemd.wait_for("READY=1")[0]
        assert_regular_pings(systemd, since=ready_at)

        source.hang.set()
        hung_at = time.monotonic()
        wait_for_silence(systemd, hung_at, longer_than=2 * WATCHDOG_S)
        assert thread.is_alive()  # alive but stuck: only the watchdog can notice

        source.hang.clear()
        source.release.set()
        assert_regular_pings(systemd, since=time.monotonic(), count=3)
    finally:
        source.release.set()
        stop.set()
        thread.join(timeout=10)
        notifier.close()
    assert not thread.is_alive()
    assert systemd.times_of("STOPPING=1"), systemd.messages[-3:]


def test_watchdog_goes_silent_when_inference_itself_hangs(systemd, tmp_path):
    classifier = HangingClassifier()
    stop, thread, notifier = start_daemon(systemd, GatedSource(), classifier, tmp_path)
    try:
        ready_at = systemd.wait_for("READY=1")[0]
        assert_regular_pings(systemd, since=ready_at, count=3)
        classifier.hang.set()
        wait_for_silence(systemd, time.monotonic(), longer_than=2 * WATCHDOG_S)
        assert thread.is_alive()
    finally:
        classifier.release.set()
        stop.set()
        thread.join(timeout=10)
        notifier.close()
    assert not thread.is_alive()


class UnpluggedCamera(GatedSource):
    """A camera that is not there until ``plugged`` is set: open() fails like a missing device."""

    def __init__(self) -> None:
        super().__init__()
        self.plugged = threading.Event()

    def open(self) -> None:
        if not self.plugged.is_set():
            raise SourceError("cannot open camera 0")


def statuses(systemd: FakeSystemd) -> list[str]:
    return [
        line.removeprefix("STATUS=")
        for _, lines in list(systemd.messages)
        for line in lines
        if line.startswith("STATUS=")
    ]


def test_ready_with_a_status_while_the_camera_is_offline_then_inspecting_once_it_is_back(
    systemd, tmp_path
):
    """systemd kills a service that sends no READY=1 within TimeoutStartSec: a station booted
    without its camera must report ready, say why it is not inspecting, and keep pinging."""
    camera = UnpluggedCamera()
    stop, thread, notifier = start_daemon(systemd, camera, ScriptedClassifier(), tmp_path)
    try:
        ready_at = systemd.wait_for("READY=1")[0]
        assert_regular_pings(systemd, since=ready_at, count=3)
        deadline = time.monotonic() + 10
        while not any("camera offline" in s for s in statuses(systemd)):
            assert time.monotonic() < deadline, statuses(systemd)
            time.sleep(0.02)
        camera.plugged.set()
        while "inspecting" not in statuses(systemd):
            assert time.monotonic() < deadline + 10, statuses(systemd)
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=10)
        notifier.close()
    assert len(systemd.times_of("READY=1")) == 1
    assert not thread.is_alive()
