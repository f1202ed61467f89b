"""A real IP camera for tests: JPEG frames served as an MJPEG stream over HTTP on loopback."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time


class MjpegStream:
    """Serves JPEG frames as ``multipart/x-mixed-replace`` (an IP camera), looping at ``fps``.

    Every client gets the frames from the first one, so a restarted daemon sees the same seam.
    """

    occurrences: tuple = ()  # the video's ground truth (pi_inspect.edge.synth Occurrence)

    def __init__(self, jpegs: list[bytes], fps: float) -> None:
        period = 1.0 / fps
        killed = self._killed = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                due = time.monotonic()
                try:
                    for i in range(10**9):
                        if killed.is_set():  # the camera is gone: the connection drops
                            return
                        jpeg = jpegs[i % len(jpegs)]
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        self.wfile.write(head % len(jpeg) + jpeg + b"\r\n")
                        due += period
                        time.sleep(max(0.0, due - time.monotonic()))
                except OSError:  # the daemon went away (SIGKILL, SIGTERM)
                    return

            def log_message(self, *args: object) -> None:
                pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/seam.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kill(self) -> None:
        """The camera dies: open connections drop and new ones are refused."""
        self._killed.set()
        self.close()
