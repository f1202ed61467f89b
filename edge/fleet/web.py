"""The fleet page's web app: one read-only page that polls ``/api/fleet`` for every station's row.

Four fixed routes, GET and HEAD only; no URL is mapped to a file (the page, script and style are
read once from the package). Every request is checked before it is routed: the Host and Origin
headers must name 127.0.0.1 or localhost on the port the server listens on (against DNS
rebinding and other sites' pages), and the raw request target must be a plain path. What
stations report is shown with ``textContent`` only, under a CSP that allows nothing foreign.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from pi_inspect.edge.fleet.status import rows, with_inventory

if TYPE_CHECKING:
    from pi_inspect.edge.fleet.watch import FleetWatch

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost")
SECURITY_HEADERS = {  # the labelling tool's (edge/label/app.py)
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
# URL -> (file in static/, content type)
ASSETS = {
    "/fleet.js": ("fleet.js", "text/javascript; charset=utf-8"),
    "/fleet.css": ("fleet.css", "text/css; charset=utf-8"),
}
_BAD_IN_PATH = ("%", "\\", "\0", "..", "?", "#")
_METHODS = ("GET", "HEAD")
_SHORT = {404: "no such page", 405: "method not allowed"}


class Refused(Exception):
    """A request refused before routing: its status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(status: int, data: Any) -> Response:
    return Response(json.dumps(data, allow_nan=False), status, content_type="application/json")


def _check_request() -> None:
    """Refuse foreign hosts and origins, odd request targets and methods."""
    port = request.environ.get("SERVER_PORT", "")  # the port listened on, not a header
    allowed = {f"{host}:{port}" for host in LOCAL_HOSTS}
    if request.headers.get("Host", "") not in allowed:
        raise Refused(403, "wrong Host header")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {f"http://{h}" for h in allowed}:
        raise Refused(403, "cross-origin request refused")
    target = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI")
    if target is None:  # a server that keeps no raw target: the decoded path, stricter still
        target = request.environ.get("PATH_INFO", "")
        if request.environ.get("QUERY_STRING"):
            target += "?" + request.environ["QUERY_STRING"]
    if not target.startswith("/") or any(bad in target for bad in _BAD_IN_PATH):
        raise Refused(400, "malformed path")
    if request.method not in _METHODS:
        raise Refused(405, "method not allowed")


def create_app(watch: FleetWatch, inventory: Iterable[str], stale_s: float) -> Flask:
    """The WSGI app showing ``watch``'s stations plus the ``inventory``'s, a station with no
    report for ``stale_s`` seconds being stale."""
    app = Flask("pi_inspect.edge.fleet", static_folder=None)
    static = resources.files("pi_inspect.edge.fleet") / "static"
    assets = {url: (static / name).read_bytes() for url, (name, _) in ASSETS.items()}
    expected = tuple(inventory)

    @app.before_request
    def _guard() -> None:
        _check_request()

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        log.debug(
            '%s "%s %s" %s', request.remote_addr, request.method, request.path, response.status_code
        )
        return response

    @app.errorhandler(Refused)
    def _refused(exc: Refused) -> Response:
        return _json(exc.status, {"error": str(exc)})

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        return _json(code, {"error": _SHORT.get(code, exc.name.lower())})

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:  # a bug must answer 500, not drop the connection
        log.error("%s %s failed", request.method, request.path, exc_info=exc)
        return _json(500, {"error": "internal error"})

    @app.get("/")
    def index() -> str:
        return render_template("fleet.html")

    @app.get("/fleet.js", endpoint="script")
    @app.get("/fleet.css", endpoint="style")
    def asset() -> Response:
        return Response(assets[request.path], content_type=ASSETS[request.path][1])

    @app.get("/api/fleet")
    def fleet() -> Response:
        now = time.time()
        found = rows(with_inventory(watch.views(), expected), now, stale_s)
        return _json(
            200,
            {
                "rows": found,  # numbers in rows are finite (rows() checks)
                "at": round(now, 3),
                "broker": watch.address,
                "connected": watch.connected,
                "error": watch.error,
                "rollout": watch.rollout(),  # the record as the rollout published it
            },
        )

    return app
