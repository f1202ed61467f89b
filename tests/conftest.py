"""Shared pytest fixtures. Keep each fixture family in its own section."""

from __future__ import annotations

import os

# Deterministic, quiet TensorFlow where a test uses it; no effect on edge-only tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")


# ---------------------------------------------------------------------------------------------
# mosquitto broker (edge/mqtt tests): a real broker on a free loopback port, stoppable to
# inject faults. `mosquitto_broker` is the plain anonymous broker; `make_mosquitto(...)` builds
# one with extra config lines (TLS listeners, password files) or persistence.
# ---------------------------------------------------------------------------------------------

import functools  # noqa: E402
import http.server  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from pi_inspect.edge.outputs import Command, Reply  # noqa: E402


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """A mosquitto subprocess with start/stop/restart for fault injection."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, extra_conf: Sequence[str] = (), persistence: bool = False):
        self.port = free_loopback_port()
        self.workdir = workdir
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1", *extra_conf]
        if not any(line.startswith(("allow_anonymous", "password_file")) for line in extra_conf):
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")  # keep root: the files below live in a root-owned tmp dir
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/"]
        else:
            lines.append("persistence false")
        self.conf_path.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf_path)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not accept on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: a persistent broker saves its sessions)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def make_mosquitto(tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Factory: ``make_mosquitto(extra_conf=[...], persistence=False)`` -> a started broker."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed (tests/run.sh installs it)")
    brokers: list[MosquittoBroker] = []

    def make(extra_conf: Sequence[str] = (), persistence: bool = False) -> MosquittoBroker:
        workdir = tmp_path / f"mosquitto{len(brokers)}"
        workdir.mkdir()
        broker = MosquittoBroker(workdir, extra_conf, persistence)
        brokers.append(broker)
        broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto_broker(make_mosquitto: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A started anonymous mosquitto on a free loopback port, persistence off."""
    return make_mosquitto()


class MqttCollector:
    """A real paho subscriber that records (topic, payload, retain) as messages arrive."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topics: Sequence[str],
        client_id: str = "",
        clean_session: bool = True,
        setup: Callable[[object], None] | None = None,
    ):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._topics = list(topics)
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        if setup is not None:  # e.g. TLS or credentials
            setup(self.client)
        self.client.connect_async(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("subscriber could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, message):
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(messages)`` holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))  # also polls predicates on other state
            return True

    def payloads(self, topic: str) -> list[bytes]:
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_subscribe() -> Iterator[Callable[..., MqttCollector]]:
    """Factory: ``mqtt_subscribe(broker, ["topic/#"], ...)`` -> a connected MqttCollector."""
    collectors: list[MqttCollector] = []

    def make(broker: MosquittoBroker, topics: Sequence[str], **kw) -> MqttCollector:
        collector = MqttCollector(broker, topics, **kw)
        collectors.append(collector)
        return collector

    yield make
    for collector in collectors:
        collector.close()


class RecordingReceiver:
    """A command receiver standing in for the daemon's dispatcher: records every command (to
    prove what reached it, or not) and answers as the daemon would."""

    def __init__(self, labels: tuple[str, ...] = ("error", "break", "length")) -> None:
        self.labels = labels
        self.calls: list[tuple[str, object]] = []
        self.commands: list[Command] = []  # every command as it came (its station included)
        self.thresholds = dict.fromkeys(labels, 0.5)

    def __call__(self, command: Command) -> Reply:
        self.commands.append(command)
        if command.verb == "thresholds":
            self.calls.append(("thresholds", dict(command.args)))
            self.thresholds.update(command.args)
            return Reply("thresholds", True, result={"thresholds": dict(self.thresholds)})
        self.calls.append((command.verb, None))
        if command.verb == "snapshot":
            return Reply("snapshot", True, result={"snapshot": "snap-0001.jpg"})
        return Reply(command.verb, True)


@pytest.fixture
def recording_receiver() -> RecordingReceiver:
    return RecordingReceiver()


@pytest.fixture
def pins():
    """gpiozero's MockFactory: real pin state, no hardware."""
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    yield factory
    factory.reset()


@pytest.fixture
def make_daemon(pins):
    """Builds the test daemon: ``make_daemon(config, **parts)``. Unless given, its model is the
    scripted classifier (tests/daemon_helpers.py), its pins are ``pins`` and it has no outputs."""
    from daemon_helpers import ScriptedClassifier

    from pi_inspect.edge.daemon import Daemon

    def make(config, **parts):
        parts.setdefault("classifier_loader", lambda _model: ScriptedClassifier())
        parts.setdefault("pin_factory", pins)
        parts.setdefault("outputs", [])
        return Daemon(config, **parts)

    return make


# ---------------------------------------------------------------------------------------------
# anomaly bundles: a tiny hand-weighted int8 model, converted once per test session with
# TensorFlow (the Pi runs the edge tests without it: these skip there)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def anomaly_tflite_bytes() -> bytes:
    pytest.importorskip("tensorflow")
    from bundle_helpers import anomaly_tflite

    return anomaly_tflite()


@pytest.fixture
def anomaly_bundle(anomaly_tflite_bytes: bytes, tmp_path: Path) -> Path:
    """A fresh copy of the tiny 96 px anomaly bundle (12x12 map), as ``convert`` writes one."""
    from bundle_helpers import write_anomaly_bundle

    return write_anomaly_bundle(tmp_path / "anomaly-bundle", anomaly_tflite_bytes)


# ---------------------------------------------------------------------------------------------
# storage faults: real small or read-only filesystems (tmpfs mounts need root; else skip)
# ---------------------------------------------------------------------------------------------


class Tmpfs:
    """A tmpfs mounted at ``path``; ``fill()`` takes every free byte, ``read_only()`` remounts."""

    def __init__(self, path: Path, size: str, options: str = "") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        opts = f"size={size},mode=0755" + (f",{options}" if options else "")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )
        self.mounted = True

    def fill(self, name: str = "filler") -> Path:
        """Write one file until the filesystem is full (ENOSPC); returns it."""
        filler = self.path / name
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (65536, 512):  # big blocks, then the last partial ones
                try:
                    while os.write(fd, b"\0" * chunk):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        return filler

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def read_only(self, on: bool = True) -> None:
        opt = "remount,ro" if on else "remount,rw"
        subprocess.run(["mount", "-o", opt, str(self.path)], check=True, capture_output=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
            self.mounted = False


@pytest.fixture
def make_tmpfs(tmp_path: Path) -> Iterator[Callable[..., Tmpfs]]:
    """Factory: ``make_tmpfs("2m", options="nr_inodes=8")`` -> a mounted tmpfs of that size
    (root only, else skip)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (the fault is injected with a real filesystem)")
    mounts: list[Tmpfs] = []

    def make(size: str = "2m", name: str = "fs", options: str = "") -> Tmpfs:
        try:
            fs = Tmpfs(tmp_path / f"{name}{len(mounts)}", size, options)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.decode().strip()}")
        mounts.append(fs)
        return fs

    yield make
    for fs in mounts:
        fs.unmount()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Playwright drives Debian's chromium)."""
    from browser_helpers import ARGS, CHROMIUM

    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def files(tmp_path):
    """An HTTP server on loopback serving ``tmp_path/www`` (bundles the fleet fetches);
    yields (folder, URL prefix)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(www))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
