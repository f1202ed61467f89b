"""The labelling tool's web app: Flask, fixed routes, small strict JSON bodies.

No URL is ever mapped to a file: the page, its script and style are read once from the package,
routes are matched exactly and only a frame number is taken from a path, so ``../``,
``%2e%2e``, absolute paths or NUL bytes simply match nothing. Every request is checked before
it is routed: the Host and Origin headers (127.0.0.1 or localhost on this port only, against
DNS rebinding and other sites' pages) and the raw request target.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from pi_inspect.edge.label.session import LabelSession, RequestError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 4096  # a save request is ~100 bytes
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
# URL -> (file in static/, content type); the page asks for them by these URLs
ASSETS = {
    "/app.js": ("label.js", "text/javascript; charset=utf-8"),
    "/app.css": ("label.css", "text/css; charset=utf-8"),
}
_INDEX = re.compile(r"[0-9]{1,9}")
_BAD_IN_PATH = ("%", "\\", "\0", "..", "?", "#")
_METHODS = ("GET", "HEAD", "POST")
_SHORT = {404: "no such page", 405: "method not allowed"}  # werkzeug's own errors, in a word


def _assets() -> dict[str, bytes]:
    static = resources.files("pi_inspect.edge.label") / "static"
    return {url: (static / name).read_bytes() for url, (name, _) in ASSETS.items()}


def strict_json(raw: bytes) -> Any:
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


def _json(status: int, data: Any) -> Response:
    return Response(json.dumps(data), status, content_type="application/json")


def _raw_target(environ: dict[str, Any]) -> str:
    """The request target as the client sent it, before any unquoting."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw is None:  # a server that keeps no raw target: rebuild it (unquoted, so stricter)
        query = environ.get("QUERY_STRING")
        raw = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
    return raw


def _index(text: str) -> int:
    if not _INDEX.fullmatch(text):
        raise RequestError(404, "no such page")
    return int(text)


def _check_request(port: int) -> None:
    """Refuse foreign hosts (DNS rebinding), foreign origins, odd paths and methods early."""
    allowed = {f"{HOST}:{port}", f"localhost:{port}"}
    if request.headers.get("Host", "") not in allowed:
        raise RequestError(403, "wrong Host header")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {f"http://{h}" for h in allowed}:
        raise RequestError(403, "cross-origin request refused")
    target = _raw_target(request.environ)
    if not target.startswith("/") or any(bad in target for bad in _BAD_IN_PATH):
        raise RequestError(400, "malformed path")
    if request.method not in _METHODS:
        raise RequestError(405, "method not allowed")


def _read_body() -> Any:
    """The request's JSON body, read only once its size and type are known to be fine."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raise RequestError(411, "send a Content-Length, not chunked data")
    length = request.headers.get("Content-Length")
    if length is None:
        raise RequestError(411, "Content-Length required")
    if not (length.isascii() and length.isdigit()):
        raise RequestError(400, "bad Content-Length")
    if int(length) > MAX_BODY:
        raise RequestError(413, f"body larger than {MAX_BODY} bytes")
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise RequestError(415, "Content-Type must be application/json")
    return strict_json(request.get_data(cache=False))


def create_app(session: LabelSession, port: int, on_quit: Callable[[], None]) -> Flask:
    """The WSGI app for ``session`` served on 127.0.0.1:``port``; ``on_quit`` runs once the
    answer to ``POST /api/quit`` has been handed to the server."""
    app = Flask("pi_inspect.edge.label", static_folder=None)
    assets = _assets()

    @app.before_request
    def _guard() -> None:
        _check_request(port)

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        log.debug(
            '%s "%s %s" %s', request.remote_addr, request.method, request.path, response.status_code
        )
        return response

    @app.errorhandler(RequestError)
    def _refused(exc: RequestError) -> Response:
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
        return render_template("index.html")

    @app.get("/app.js", endpoint="script")
    @app.get("/app.css", endpoint="style")
    def asset() -> Response:
        return Response(assets[request.path], content_type=ASSETS[request.path][1])

    @app.get("/api/state")
    def state() -> Response:
        return _json(200, session.state())

    @app.get("/api/frame/<index>")
    def frame(index: str) -> Response:
        return _json(200, session.frame_info(_index(index)))

    @app.get("/api/image/<index>.png")
    def image(index: str) -> Response:
        return Response(session.frame_png(_index(index)), content_type="image/png")

    @app.post("/api/save")
    def save() -> Response:
        return _json(200, session.save(_read_body()))

    @app.post("/api/quit")
    def quit_() -> Response:
        if _read_body() != {}:
            raise RequestError(400, "quit takes an empty JSON object")
        response = _json(200, {"stopped": True})
        response.call_on_close(on_quit)
        return response

    return app
