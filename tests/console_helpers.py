"""Helpers for the console tests: a console on a free port, HTTP requests, a recording receiver."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conftest import RecordingReceiver

from pi_inspect.edge.config import output_context, parse_config
from pi_inspect.edge.console import build_console
from pi_inspect.edge.events import ModelInfo, State

TOKEN = "s3cret-console-token-0123"


LABELS = ("good", "error", "break", "length")


def receiver() -> RecordingReceiver:
    """conftest's recording receiver with the demo model's labels."""
    return RecordingReceiver(LABELS)


def model_state(**fields: Any) -> State:
    """A state naming the demo model's labels (actions validate thresholds against them)."""
    return State("ok", (), ModelInfo("seam", "3", "ab" * 32, LABELS), time.time(), **fields)


def listening(port: int) -> bool:
    """Whether something accepts connections on loopback ``port`` (a server has started)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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
def running_console(
    state_dir: Path, recording: Any = None, host: str = "127.0.0.1", clock=None, **console
):
    """A started console whose commands go to ``recording`` (a recording receiver); ``clock``
    drives its sessions and wrong-token throttle."""
    config = console_config(state_dir, host, **console)
    output, server = build_console(config.console, output_context(config), clock=clock)
    output.subscribe(recording if recording is not None else receiver())
    output.publish_state(model_state())
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
