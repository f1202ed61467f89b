"""The labelling tool's HTTP server: the Flask app of ``app`` served by waitress on 127.0.0.1.

waitress parses each request; what it refuses itself (a body announced larger than
``MAX_BODY``, chunked data, a malformed request line or header) is answered here as every
other error is, in JSON with the security headers, and always unread. A client that goes away
mid-request (a tab closed or reloaded) is a debug line, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import ClientDisconnected, HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import Error

from pi_inspect.edge.label.app import HOST, MAX_BODY, SECURITY_HEADERS, create_app
from pi_inspect.edge.label.session import LabelSession

__all__ = ["HOST", "MAX_BODY", "LabelServer"]

log = logging.getLogger(__name__)

THREADS = 6  # a browser opens up to 6 connections to one site
MAX_HEADER = 32 * 1024  # bytes of request line and headers
DRAIN_S = 2.0  # on stop: how long answers already made (the quit reply) may take to go out


class _LengthRequired(Error):
    code = 411
    reason = "Length Required"


class _Parser(HTTPRequestParser):
    """waitress' request parser that refuses a chunked body as soon as the headers say so,
    before reading any of it: a body must announce its length."""

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.chunked and self.error is None:
            self.error = _LengthRequired("send a Content-Length, not chunked data")
            self.completed = True
        return consumed


class _ErrorTask(ErrorTask):
    """A request waitress refused, answered as the app answers errors."""

    def execute(self) -> None:
        error = self.request.error
        text = f"body larger than {MAX_BODY} bytes" if error.code == 413 else str(error.body)
        body = json.dumps({"error": text}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [("Content-Type", "application/json"), *SECURITY_HEADERS.items()]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Task(WSGITask):
    """One request for the app; an error answer closes its connection, a client gone before
    its answer is a debug line."""

    def build_response_header(self) -> bytes:
        if self.status[:1] in ("4", "5"):
            self.set_close_on_finish()
        return super().build_response_header()

    def service(self) -> None:
        try:
            super().service()
        except ClientDisconnected:
            self.close_on_finish = True
            self.channel.went_away(f"during {self.request.command} {self.request.path}")


class _Channel(HTTPChannel):
    task_class = _Task
    error_task_class = _ErrorTask
    parser_class = _Parser
    gone = False

    def went_away(self, when: str) -> None:
        if not self.gone:
            self.gone = True
            log.debug("%s went away %s", self.addr[0] if self.addr else "?", when)

    def handle_close(self) -> None:
        """Called by waitress on a reset or broken connection (inside its ``except``), and when
        it closes one itself; only the first with a request unanswered or an answer unsent is
        the client going away."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            self.went_away(f"({exc})")
        elif self.connected and (self.requests or self.total_outbufs_len):
            self.went_away("before its answer was sent")
        super().handle_close()


class _Server(TcpWSGIServer):
    channel_class = _Channel


class LabelServer:
    """waitress serving the labelling app on 127.0.0.1 (``port`` 0: any free port); a context
    manager with an idempotent ``close()``. ``serve_forever()`` serves on the calling thread
    until ``request_stop()`` (``POST /api/quit``, a signal handler); ``start()`` serves in a
    background thread instead (tests, embedding)."""

    def __init__(self, session: LabelSession, port: int = 0) -> None:
        self.session = session
        self.stopped = threading.Event()
        self._map: dict[int, Any] = {}
        adj = Adjustments(
            host=HOST,
            port=port,
            threads=THREADS,
            ident="pi-inspect-label",
            max_request_body_size=MAX_BODY + 1,  # waitress refuses a length at or above it
            max_request_header_size=MAX_HEADER,
            log_socket_errors=False,  # a client gone is logged by the channel, at debug level
            clear_untrusted_proxy_headers=True,
        )
        dispatcher = ThreadedTaskDispatcher()
        try:  # binds now: a port in use is an OSError here
            self._server = _Server(self._wsgi, self._map, dispatcher=dispatcher, adj=adj)
        except BaseException:
            wasyncore.close_all(self._map)  # the wake-up pipe made before the bind
            raise
        dispatcher.set_thread_count(adj.threads)
        self.server_address: tuple[str, int] = (HOST, int(self._server.effective_port))
        self.app = create_app(session, self.server_address[1], self.request_stop)
        self._thread: threading.Thread | None = None
        self._finished = False
        self._lock = threading.Lock()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def request_stop(self) -> None:
        """Stop serving soon (``q``, Ctrl-C); safe from a request thread or a signal handler:
        it sets a flag and writes one byte to waitress' wake-up pipe, taking no lock."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        with contextlib.suppress(OSError):  # already closed: nothing left to wake
            self._server.pull_trigger()

    def serve_forever(self) -> None:
        """Serve on this thread until ``request_stop()``; then answer what is answered, close."""
        try:
            while not self.stopped.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, count=1)
            self._drain()
        finally:
            self._finish()

    def _drain(self) -> None:
        """Stop accepting, then let requests in progress and answers made go out (the reply to
        ``POST /api/quit``), for at most ``DRAIN_S``."""
        self._server.accepting = False
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and any(
            isinstance(c, _Channel) and c.connected and (c.requests or c.total_outbufs_len)
            for c in list(self._map.values())
        ):
            wasyncore.loop(timeout=0.05, map=self._map, count=1)

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self.stopped.set()
        self._server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self._map)

    def start(self) -> LabelServer:
        """Serve in a background thread; ``close()`` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="label-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.request_stop()
            self._thread.join(timeout=5)
        self.request_stop()  # not serving (never started, or stopped): only the flag
        self._finish()

    def __enter__(self) -> LabelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
