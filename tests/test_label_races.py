"""The labelling server under attack from the same machine: a path swapped for a symlink while
saves race, and clients that hang up mid-response.

A checked path is not a safe path: between the check and the write, another process can replace
the saved frame (or its class folder) with a symlink to somewhere else. Saves must then be
refused or land inside the output folder, never outside.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from label_helpers import files_under, make_video, request, start_server

SAVES = 300
CLIENTS = 4


def _race(server, body: dict, swap, stop: threading.Event) -> dict[int, int]:
    """SAVES saves from CLIENTS threads while ``swap`` runs in a loop; status -> count."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def swapper() -> None:
        while not stop.is_set():
            swap()

    def client(n: int) -> None:
        for _ in range(n):
            status, _reply = request(server, "POST", "/api/save", body)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    swapping = threading.Thread(target=swapper, daemon=True)
    swapping.start()
    clients = [threading.Thread(target=client, args=(SAVES // CLIENTS,)) for _ in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(timeout=120)
    stop.set()
    swapping.join(timeout=10)
    return statuses


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    return outside


def test_racing_saves_against_a_frame_swapped_for_a_symlink_write_nothing_outside_out(tmp_path):
    video = make_video(tmp_path / "seam.mp4")
    out = tmp_path / "out"
    outside = _outside(tmp_path)
    body = {"index": 1, "values": {"good": True, "error": False, "break": False, "length": True}}
    swaps = [0]
    with start_server(video, out) as server:
        assert request(server, "POST", "/api/save", body)[0] == 200
        frame = out / "seam_00001.png"
        link = out / "planted-link"

        restore = out / "planted-file"

        def swap() -> None:  # replace the saved frame, atomically, by a link to outside; undo
            link.unlink(missing_ok=True)
            os.symlink(outside / "stolen.png", link)
            os.replace(link, frame)
            time.sleep(0.001)
            restore.write_bytes(b"not yet saved")
            os.replace(restore, frame)
            swaps[0] += 1

        statuses = _race(server, body, swap, threading.Event())
    print(f"frame swapped {swaps[0]} times; save statuses {statuses}")
    assert list(outside.iterdir()) == [], "a save wrote through the symlink"
    assert sum(statuses.values()) == SAVES and set(statuses) <= {200, 409}, statuses
    assert statuses.get(200, 0) > 0 and swaps[0] > 10, (statuses, swaps)
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())  # no temp file left behind


def test_racing_saves_against_a_class_folder_swapped_for_a_symlink_write_nothing_outside_out(
    tmp_path,
):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"cam_{i}.jpg"), np.full((40, 40, 3), 60 * i, np.uint8))
    out = tmp_path / "out"
    outside = _outside(tmp_path)
    body = {"index": 0, "values": {"bad": True, "ok": False}}
    swaps = [0]
    with start_server(folder, out, mode="multiclass", labels=("bad", "ok")) as server:
        assert request(server, "POST", "/api/save", body)[0] == 200
        parked = out / ".parked"

        def swap() -> None:  # move the real folder aside (inside out), plant a link, undo
            os.rename(out / "bad", parked)
            os.symlink(outside, out / "bad")
            time.sleep(0.0005)
            os.unlink(out / "bad")
            os.rename(parked, out / "bad")
            swaps[0] += 1
            time.sleep(0.001)

        statuses = _race(server, body, swap, threading.Event())
    print(f"class folder swapped {swaps[0]} times; save statuses {statuses}")
    assert list(outside.iterdir()) == [], "a save wrote through the symlinked class folder"
    assert sum(statuses.values()) == SAVES and set(statuses) <= {200, 409}, statuses
    assert statuses.get(200, 0) > 0 and swaps[0] > 10, (statuses, swaps)
    assert all(out in p.parents for p in files_under(out))


def _hang_up_mid_request(server) -> None:
    """Ask for a frame and reset the connection (RST) before the answer is read."""
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    host = f"127.0.0.1:{server.server_address[1]}"
    sock.sendall(f"GET /api/image/1.png HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    sock.close()


def test_clients_hanging_up_are_debug_lines_not_tracebacks(tmp_path, caplog, capfd):
    video = make_video(tmp_path / "seam.mp4")
    caplog.set_level(logging.DEBUG, logger="pi_inspect.edge.label.server")
    with start_server(video, tmp_path / "out") as server:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _hang_up_mid_request(server)
            time.sleep(0.05)
            if any("went away" in r.getMessage() for r in caplog.records):
                break
        assert request(server, "GET", "/api/state")[0] == 200  # still serving
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert gone and all(r.levelno == logging.DEBUG for r in gone)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err
