"""Helpers for the console tests: a console on a free port, HTTP requests, a recording controller."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.config import parse_config
from edge.console import build_console

TOKEN = "s3cret-console-token-0123"


class RecordingController:
    """The Controller protocol, recording every call (the daemon stands behind it in e2e tests)."""

    labels = ("good", "error", "break", "length")

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.thresholds = {"error": 0.5, "break": 0.5, "length": 0.5}

    def trigger(self) -> None:
        self.calls.append(("trigger", None))

    def request_snapshot(self) -> str | None:
        self.calls.append(("snapshot", None))
        return None

    def reload(self) -> None:
        self.calls.append(("reload", None))

    def set_thresholds(self, thresholds: dict[str, float]) -> dict[str, float]:
        self.calls.append(("thresholds", thresholds))
        self.thresholds.update(thresholds)
        return dict(self.thresholds)

    def acknowledge(self) -> None:
        self.calls.append(("acknowledge", None))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def console_config(state_dir: Path, host: str = "127.0.0.1", **console: Any):
    section = {"enabled": True, "host": host, "port": free_port(host), **console}
    if host != "127.0.0.1" and "credentials" not in console:
        creds = state_dir / "console.token"
        state_dir.mkdir(parents=True, exist_ok=True)
        creds.write_text(TOKEN + "\n")
        section["credentials"] = str(creds)
    return parse_config(
        {"state_dir": str(state_dir), "gpio": {"enabled": False}, "console": section}
    )


@contextmanager
def running_console(state_dir: Path, controller: Any = None, host: str = "127.0.0.1", **console):
    config = console_config(state_dir, host, **console)
    output, server = build_console(config, controller or RecordingController())
    server.start()
    try:
        yield output, server
    finally:
        output.close()


def request(
    url: str,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; JSON-encodes ``data`` unless it is bytes."""
    body = data if isinstance(data, bytes) or data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def action(base: str, verb: str, payload: Any = None, **headers: str):
    wanted = {"X-Pi-Inspect": "1", "Content-Type": "application/json", **headers}
    return request(f"{base}/api/action/{verb}", data=payload or {}, headers=wanted, method="POST")
