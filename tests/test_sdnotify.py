"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from pi_inspect.edge.sdnotify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path):
    """A bound datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def _recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def _pending(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued, without waiting."""
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2.0)
    return out


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ready_with_status_arrives_as_one_datagram(notify_socket):
    path, sock = notify_socket
    with Notifier.from_env({"NOTIFY_SOCKET": str(path)}) as n:
        n.ready(status="bundle seam-v3 loaded\ncamera open")
    assert _recv(sock) == ["READY=1", "STATUS=bundle seam-v3 loaded camera open"]


def test_abstract_socket_address_is_reached():
    name = f"pi-inspect-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        with Notifier.from_env({"NOTIFY_SOCKET": "@" + name}) as n:
            n.stopping()
        assert _recv(sock) == ["STOPPING=1"]
    finally:
        sock.close()


def test_reloading_carries_current_monotonic_usec(notify_socket):
    path, sock = notify_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    with Notifier(str(path)) as n:
        n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = _recv(sock)
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_watchdog_pings_at_most_every_half_interval(notify_socket):
    path, sock = notify_socket
    clock = FakeClock()
    with Notifier(str(path), watchdog_usec=2_000_000, clock=clock) as n:
        n.watchdog()  # first call always pings
        for _ in range(50):  # a busy loop within the same second sends nothing more
            clock.now += 0.01
            n.watchdog()
        assert _pending(sock) == [b"WATCHDOG=1"]
        clock.now += 0.6  # 1.1 s since the first ping: more than half of 2 s
        n.watchdog()
        assert _pending(sock) == [b"WATCHDOG=1"]
    assert n.watchdog_interval == pytest.approx(1.0)


def test_watchdog_is_off_when_watchdog_pid_names_another_process(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    if os.getpid() == 1:
        env["WATCHDOG_PID"] = "2"
    with Notifier.from_env(env) as n:
        n.watchdog()
        assert n.watchdog_interval is None
    assert _pending(sock) == []


def test_watchdog_is_on_when_watchdog_pid_is_ours(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}
    with Notifier.from_env(env) as n:
        n.watchdog()
        assert n.watchdog_interval == pytest.approx(0.2)
    assert _recv(sock) == ["WATCHDOG=1"]


def test_everything_is_a_noop_without_notify_socket(tmp_path):
    n = Notifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")
    n.watchdog()
    n.reloading()
    n.status("y")
    n.stopping()
    n.close()
    n.close()


def test_send_failure_is_logged_once_and_never_raised(tmp_path, caplog):
    missing = tmp_path / "nobody-listens.sock"
    n = Notifier(str(missing), watchdog_usec=1)
    with caplog.at_level(logging.DEBUG, logger="pi_inspect.edge.sdnotify"):
        for _ in range(5):
            n.ready()
            n.status("still here")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens.sock" in warnings[0].getMessage()
    n.close()


def test_close_is_idempotent_and_silences_later_calls(notify_socket):
    path, sock = notify_socket
    n = Notifier(str(path))
    n.status("before")
    n.close()
    n.close()
    n.status("after")
    assert _pending(sock) == [b"STATUS=before"]
