"""Hostile frames and streams: a station never dies of what a camera sends, shows amber within
the heartbeat time where it cannot inspect, and holds bounded memory.

A real MJPEG server on loopback (a socket the test drives byte by byte) serves each hostile
stream; folders hold crafted files. The daemon runs in-process with MockFactory pins.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_helpers import wait_until

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.errors import SourceError
from pi_inspect.edge.folder_source import FolderSource
from pi_inspect.edge.jpeg import JpegPixels, MjpegReader

AMBER = 22
BOUNDARY = b"frame"
RSS_GROWTH_BOUND = 96 << 20  # what one bounded frame and the reader's buffers may take


def rss() -> int:
    """This process's resident memory now, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def jpeg(width: int = 64, height: int = 48) -> bytes:
    img = np.full((48, 64, 3), 120, np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    data = bytearray(buf.tobytes())
    if (width, height) != (64, 48):  # the header claims another size: patch the SOF0 segment
        at = data.index(b"\xff\xc0")
        data[at + 5 : at + 9] = bytes([height >> 8, height & 255, width >> 8, width & 255])
    return bytes(data)


def part(body: bytes, length: bool = True) -> bytes:
    head = b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body + b"\r\n"


class HostileServer:
    """Serves ``talk(send)`` to every client: an HTTP multipart response the test writes."""

    def __init__(self, talk: Callable[[Callable[[bytes], None], threading.Event], None]) -> None:
        self._talk = talk
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stream.mjpg"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary="
                    + BOUNDARY + b"\r\n\r\n"
                )
                self._talk(conn.sendall, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self._listener.close()


def forever(chunk: bytes, pause_s: float = 0.0):
    def talk(send, stop):
        while not stop.is_set():
            send(chunk)
            if pause_s:
                time.sleep(pause_s)

    return talk


def drip(head: bytes, every_s: float):
    def talk(send, stop):
        send(head)
        while not stop.is_set():
            send(b"\xab")
            stop.wait(every_s)

    return talk


HOSTILE = {
    "huge headers (65535x65535)": forever(part(jpeg(65535, 65535)), 0.01),
    "truncated frames": forever(part(jpeg()[:40]), 0.01),
    "one byte every 0.5 s": drip(b"--frame\r\nContent-Length: 5000\r\n\r\n", 0.5),
    "a header line dripping a byte every 0.5 s": drip(b"--frame\r\nContent-Ty", 0.5),
    "Content-Length 4000000000": drip(b"--frame\r\nContent-Length: 4000000000\r\n\r\n", 0.05),
    "no length, no boundary": forever(b"--frame\r\n\r\n" + b"\x00" * 65536 + b"x" * 1_000_000),
    "endless header lines": forever(b"--frame\r\n" + b"X-Junk: 1\r\n" * 10_000),
}


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def start(talk) -> HostileServer:
        servers.append(HostileServer(talk))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.mark.parametrize("name", [n for n in HOSTILE if n not in ("huge headers (65535x65535)",
                                                                  "truncated frames")])
def test_a_hostile_stream_read_ends_in_bounded_time_and_memory(serve, name):
    server = serve(HOSTILE[name])
    before = rss()
    reader = MjpegReader(server.url, timeout_s=2.0, max_bytes=8 << 20, deadline_s=2.0)
    started = time.monotonic()
    with pytest.raises(SourceError):
        for _ in range(100):  # no hostile stream yields a frame, however many are asked for
            reader.read()
    reader.close()
    assert time.monotonic() - started < 10.0
    assert rss() - before < RSS_GROWTH_BOUND


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_station_on_a_hostile_stream_stays_up_and_shows_amber_within_the_heartbeat_time(
    serve, name, make_daemon, pins, tmp_path
):
    server = serve(HOSTILE[name])
    config = parse_config(
        {
            "state_dir": str(tmp_path),
            "source": {"uri": server.url, "frame_timeout_s": 1.0, "reconnect_min_s": 0.2,
                       "reconnect_max_s": 0.5},
            "pipeline": {"heartbeat_timeout_s": 2.0},
            "snapshots": {"enabled": False},
            "stdout": {"enabled": False},
        }
    )  # fmt: skip
    daemon = make_daemon(config)
    stop = threading.Event()
    before = rss()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        assert wait_until(lambda: daemon.status.state is not None
                          and daemon.status.state.verdict == "fault", timeout=8.0)
        took = time.monotonic() - started
        assert took < 2.0 + 4.0  # the heartbeat time, and the time a frame may take to fail
        assert "camera" in daemon.status.state.fault
        assert pins.pin(AMBER).state
        time.sleep(1.0)  # it stays up, and stays amber
        assert thread.is_alive() and daemon.status.state.verdict == "fault"
        assert rss() - before < RSS_GROWTH_BOUND
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_frame_whose_header_claims_40000x30000_is_never_decoded():
    with pytest.raises(ValueError, match="max_pixels"):
        JpegPixels.of(jpeg(40000, 30000))
    # even allowed, the full decode is an error of the frame, never an exception of OpenCV's
    pixels = JpegPixels.of(jpeg(40000, 30000), max_pixels=2_000_000_000)
    with pytest.raises(ValueError):
        pixels.full()


def test_a_folder_skips_a_sparse_1_gib_jpeg_unread_and_reads_the_rest(tmp_path):
    huge = tmp_path / "a.jpg"
    with huge.open("wb") as fh:
        fh.write(jpeg())
        fh.truncate(1 << 30)  # sparse: 1 GiB on paper, nothing on disk
    (tmp_path / "b.jpg").write_bytes(jpeg())
    (tmp_path / "c.jpg").write_bytes(jpeg(40000, 30000))
    before = rss()
    source = FolderSource(tmp_path)
    source.open()
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    assert [f.pixels.size for f in frames] == [(64, 48)]  # only b.jpg
    assert rss() - before < RSS_GROWTH_BOUND


def test_a_looping_folder_of_only_junk_is_a_camera_fault_within_the_heartbeat_time(
    make_daemon, pins, tmp_path
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i}.jpg").write_bytes(jpeg(40000, 30000) if i else b"not a jpeg at all")
    config = parse_config(
        {
            "state_dir": str(tmp_path),
            "source": {"uri": str(frames), "kind": "folder", "loop": True},
            "pipeline": {"heartbeat_timeout_s": 1.0},
            "snapshots": {"enabled": False},
            "stdout": {"enabled": False},
        }
    )
    daemon = make_daemon(config)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: daemon.status.state is not None
                          and daemon.status.state.verdict == "fault", timeout=6.0)
        assert pins.pin(AMBER).state and thread.is_alive()
    finally:
        stop.set()
        thread.join(10)


def test_the_unit_caps_the_services_memory():
    unit = (Path(__file__).resolve().parents[1] / "systemd" / "pi-inspect.service").read_text()
    assert "MemoryMax=" in unit and "MemoryHigh=" in unit
    assert os.path.exists("/proc/self/status")  # the RSS figures above are measured, not guessed


def test_a_png_whose_header_claims_40000x30000_is_skipped_before_any_decode(tmp_path):
    ok, png = cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))
    data = bytearray(png.tobytes())
    data[16:24] = (40000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # IHDR width, height
    (tmp_path / "a.png").write_bytes(bytes(data))
    (tmp_path / "b.jpg").write_bytes(jpeg())
    source = FolderSource(tmp_path)
    source.open()
    frames = []
    while (frame := source.read()) is not None:  # never an OpenCV exception, never a reopen
        frames.append(frame)
    assert [f.pixels.size for f in frames] == [(64, 48)]
