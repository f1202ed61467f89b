"""The fleet page's HTTP server: the Flask app of ``web`` served by waitress on 127.0.0.1.

Loopback only, on purpose: the page has no login, and the app refuses any Host but
127.0.0.1/localhost on this port. A viewer on another machine forwards the port over SSH,
``ssh -L 8090:127.0.0.1:8090 workstation``, and opens http://127.0.0.1:8090/ there.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

HOST = "127.0.0.1"
THREADS = 4  # a few browser tabs polling every 2 s
MAX_HEADER = 32 * 1024  # bytes of request line and headers
MAX_BODY = 1024  # the page takes no request body: waitress refuses a larger one unread


class FleetServer:
    """waitress serving ``app`` on 127.0.0.1:``port`` (0: any free port), bound at once (a port in
    use is an ``OSError`` here). ``start()`` serves in a background thread, ``close()``
    (idempotent) stops it; a context manager that closes."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self.stopped = threading.Event()
        self._map: dict[int, Any] = {}
        adj = Adjustments(
            host=HOST,
            port=port,
            threads=THREADS,
            ident="pi-inspect-fleet",
            max_request_body_size=MAX_BODY,
            max_request_header_size=MAX_HEADER,
            log_socket_errors=False,  # a tab closed mid-answer is no error
            clear_untrusted_proxy_headers=True,
        )
        dispatcher = ThreadedTaskDispatcher()
        try:
            self._server = TcpWSGIServer(app, self._map, dispatcher=dispatcher, adj=adj)
        except BaseException:
            wasyncore.close_all(self._map)  # the wake-up pipe made before the bind
            raise
        dispatcher.set_thread_count(adj.threads)
        self.address: tuple[str, int] = (HOST, int(self._server.effective_port))
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._finished = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.address[1]}/"

    def start(self) -> FleetServer:
        """Serve in a background thread until ``request_stop()`` or ``close()``."""
        with self._lock:
            if self._thread is None and not self._finished:
                self._thread = threading.Thread(target=self._serve, name="fleet-http", daemon=True)
                self._thread.start()
        return self

    def _serve(self) -> None:
        try:
            while not self.stopped.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, count=1)
        finally:
            self.stopped.set()

    def request_stop(self) -> None:
        """Stop serving soon; safe from a signal handler: it sets a flag and wakes waitress."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        with contextlib.suppress(OSError):  # already closed: nothing left to wake
            self._server.pull_trigger()

    def wait(self) -> None:
        """Block until the server is asked to stop (signals are handled meanwhile)."""
        while not self.stopped.wait(0.5):
            pass

    def close(self) -> None:
        self.request_stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self._map)

    def __enter__(self) -> FleetServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
