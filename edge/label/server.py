"""The labelling tool's HTTP server: 127.0.0.1 only, fixed routes, small strict JSON bodies.

No URL is ever mapped to a file: routes are matched exactly and only a frame number is taken
from a path, so ``../``, ``%2e%2e``, absolute paths or NUL bytes simply match nothing.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pi_inspect.edge.label import page
from pi_inspect.edge.label.session import LabelSession, RequestError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 4096  # a save request is ~100 bytes
# A browser tab closed or reloaded mid-response: routine, not an error.
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_FRAME = re.compile(r"/api/frame/(\d{1,9})")
_IMAGE = re.compile(r"/api/image/(\d{1,9})\.png")
_STATIC = {
    "/": ("text/html; charset=utf-8", page.HTML),
    "/app.js": ("text/javascript; charset=utf-8", page.SCRIPT),
    "/app.css": ("text/css; charset=utf-8", page.STYLE),
}
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def _strict_json(raw: bytes) -> Any:
    """Parse JSON refusing duplicate keys and NaN/Infinity."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise RequestError(400, "duplicate key in JSON object")
        return dict(items)

    def constant(name: str) -> Any:
        raise RequestError(400, f"{name} is not allowed")

    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RequestError(400, "body is not valid UTF-8 JSON") from None


class LabelHandler(BaseHTTPRequestHandler):
    """One request; state lives in ``self.server.session``."""

    server: LabelServer
    server_version = "pi-inspect-label"
    sys_version = ""
    timeout = 30  # seconds a client may idle mid-request before its socket is closed
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s " + format, self.address_string(), *args)

    # --- responses ----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self.close_connection = True
        self._json(status, {"error": message})

    # --- checks -------------------------------------------------------------------------

    def _check_request(self) -> None:
        """Refuse foreign hosts (DNS rebinding), foreign origins and odd paths early."""
        port = self.server.server_address[1]
        allowed = {f"{HOST}:{port}", f"localhost:{port}"}
        if self.headers.get("Host", "") not in allowed:
            raise RequestError(403, "wrong Host header")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in allowed}:
            raise RequestError(403, "cross-origin request refused")
        path = self.path
        if not path.startswith("/") or any(c in path for c in ("%", "\\", "\0", "..", "?", "#")):
            raise RequestError(400, "malformed path")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "send a Content-Length, not chunked data")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "Content-Length required")
        if not length.isdigit():
            raise RequestError(400, "bad Content-Length")
        if int(length) > MAX_BODY:
            raise RequestError(413, f"body larger than {MAX_BODY} bytes")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(415, "Content-Type must be application/json")
        return self.rfile.read(int(length))

    # --- methods ------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        try:
            self._check_request()
            session = self.server.session
            if self.path in _STATIC:
                content_type, text = _STATIC[self.path]
                self._send(200, text.encode(), content_type)
            elif self.path == "/api/state":
                self._json(200, session.state())
            elif match := _FRAME.fullmatch(self.path):
                self._json(200, session.frame_info(int(match.group(1))))
            elif match := _IMAGE.fullmatch(self.path):
                self._send(200, session.frame_png(int(match.group(1))), "image/png")
            else:
                raise RequestError(404, "no such page")
        except RequestError as exc:
            self._error(exc.status, str(exc))
        except DISCONNECTS as exc:
            self._gone(exc)
        except Exception:  # a bug must answer 500, not drop the connection
            log.exception("GET %s failed", self.path)
            self._error(500, "internal error")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        try:
            self._check_request()
            if self.path not in ("/api/save", "/api/quit"):
                raise RequestError(404, "no such action")
            body = _strict_json(self._read_body())
            if self.path == "/api/save":
                self._json(200, self.server.session.save(body))
            else:
                if body != {}:
                    raise RequestError(400, "quit takes an empty JSON object")
                self._json(200, {"stopped": True})
                self.server.request_stop()
        except RequestError as exc:
            self._error(exc.status, str(exc))
        except DISCONNECTS as exc:
            self._gone(exc)
        except Exception:
            log.exception("POST %s failed", self.path)
            self._error(500, "internal error")

    def _gone(self, exc: BaseException) -> None:
        self.close_connection = True
        log.debug(
            "%s went away during %s %s: %s", self.address_string(), self.command, self.path, exc
        )

    def _refuse(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


class LabelServer(ThreadingHTTPServer):
    """ThreadingHTTPServer bound to 127.0.0.1; a context manager with an idempotent close."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: LabelSession, port: int = 0) -> None:
        super().__init__((HOST, port), LabelHandler)
        self.session = session
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that disconnects is a debug line; anything else is logged, not printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            log.debug("%s:%s went away: %s", *client_address[:2], exc)
        else:
            log.error("request from %s:%s failed", *client_address[:2], exc_info=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def request_stop(self) -> None:
        """Stop serving soon (the ``q`` key); safe to call from a request thread."""
        self.stopped.set()
        threading.Thread(target=self.shutdown, name="label-stop", daemon=True).start()

    def start(self) -> LabelServer:
        """Serve in a background thread (tests, embedding); ``close()`` stops it."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="label-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stopped.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def __enter__(self) -> LabelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
