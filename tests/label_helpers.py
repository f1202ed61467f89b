"""Shared by tests/test_label.py and tests/test_label_browser.py: a video, a running server."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import cv2
import numpy as np

from pi_inspect.edge.data.table import SEED_LABELS
from pi_inspect.edge.label.server import LabelServer
from pi_inspect.edge.label.session import LabelSession, assign_keys
from pi_inspect.edge.label.sources import open_frames
from pi_inspect.edge.label.store import ClassFolderStore, TableStore


def make_video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(frames):
        img = np.full((48, 64, 3), 30 * i, np.uint8)
        cv2.putText(img, str(i), (5, 35), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(img)
    writer.release()
    return path


def start_server(source: Path, out: Path, mode: str = "multilabel", labels=SEED_LABELS):
    store = (TableStore if mode == "multilabel" else ClassFolderStore)(out, tuple(labels))
    session = LabelSession(open_frames(source), store, assign_keys(tuple(labels)), mode)
    return LabelServer(session, port=0).start()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def request(server, method, path, body=None, headers=None):
    """One request; returns (status, parsed JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(raw) if is_json else raw
    finally:
        conn.close()


def raw_request(server, data: bytes) -> int:
    """Send raw bytes (paths http.client refuses to build) and return the status code."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])
