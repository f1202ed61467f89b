"""The console's HTTP side: a Flask app with fixed routes, served by waitress in a thread.

No URL is mapped to a file: the page, its script and style are read once from the package; only
snapshots (by a name matching the snapshot store's pattern) and review items (by id) are read
from disk, each through one check. Actions are POSTs guarded by ``pi_inspect.edge.console.security``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from pi_inspect.edge.console.actions import Actions
from pi_inspect.edge.console.output import ConsoleOutput
from pi_inspect.edge.console.review import ReviewStore
from pi_inspect.edge.console.security import (
    ACTION_HEADER,
    HEADERS,
    SESSION_COOKIE,
    SESSION_TTL_S,
    Guard,
)
from pi_inspect.edge.console.throttle import Throttled, client_key

log = logging.getLogger(__name__)

SNAPSHOT_NAME = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9]{5}-[A-Za-z0-9_-]{1,40}(\.heat)?\.jpg")
MAX_BODY = 4096
MAX_TOKEN = 1024  # characters: longer is no token, and is refused before any comparison
MAX_PAGE = 100_000  # events are kept by the thousand: a larger page is a malformed one
MAX_SEQ = 10**18  # frame sequence numbers (the live view's ``after``)
_OPEN = {"index", "asset", "session", "login"}  # reachable before login (no station data)
_ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}


def _assets() -> dict[str, bytes]:
    static = resources.files("pi_inspect.edge.console") / "static"
    return {name: (static / name).read_bytes() for name in _ASSETS}


def create_app(
    console: ConsoleOutput,
    guard: Guard,
    actions: Actions,
    *,
    review: ReviewStore,
    fps: float = 5.0,
    stations: tuple[str, ...] = (),
) -> Flask:
    """The WSGI app; everything it touches is passed in. ``stations``: the device's (a page
    of one station at a time: ``?station=<name>``; unknown names are 404)."""
    from pi_inspect.edge.console.metrics import make_registry

    app = Flask("pi_inspect.edge.console", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    registry = make_registry(console)
    assets = _assets()
    live = console.frame_tap

    def _station() -> str | None:
        name = request.args.get("station") or None
        if name is not None and name not in stations:
            abort(404, "no such station")
        return name

    @app.before_request
    def _guard() -> Any:
        if not guard.host_ok(request.host):
            abort(403, "unknown host")
        if request.method == "POST":
            if request.headers.get(ACTION_HEADER) != "1":
                abort(403, f"actions need the {ACTION_HEADER} header")
            if not guard.origin_ok(request.headers.get("Origin"), request.host):
                abort(403, "cross-site request refused")
            if request.endpoint != "login" and not _authed():
                abort(401, "log in first")
        elif request.endpoint not in _OPEN and guard.needs_login_to_view() and not _authed():
            abort(401, "log in first")
        return None

    def _authed() -> bool:
        cookie = request.cookies.get(SESSION_COOKIE)
        authorization = request.headers.get("Authorization")
        return guard.authenticated(client_key(request.remote_addr), authorization, cookie)

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(HTTPException)
    def _error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(ok=False, error=exc.description), exc.code or 500

    @app.errorhandler(Throttled)
    def _throttled(exc: Throttled) -> tuple[Response, int, dict[str, str]]:
        return jsonify(ok=False, error=str(exc)), 429, {"Retry-After": str(exc.retry_after)}

    @app.get("/", endpoint="index")
    def index() -> str:
        return render_template(
            "index.html", fps=fps, stations=stations if len(stations) > 1 else ()
        )

    @app.get("/static/<name>", endpoint="asset")
    def asset(name: str) -> Response:
        if name not in assets:
            abort(404, "no such file")
        return Response(assets[name], content_type=_ASSETS[name])

    @app.get("/api/session", endpoint="session")
    def session() -> Response:
        authed = _authed()
        return jsonify(
            login_required=guard.needs_login_to_view() and not authed,
            can_act=authed,
            token_needed=not guard.loopback,
        )

    @app.post("/api/login", endpoint="login")
    def login() -> Response:
        sid = guard.login(client_key(request.remote_addr), _login_token())
        if sid is None:
            abort(401, "wrong token")
        response = jsonify(ok=True)
        response.set_cookie(
            SESSION_COOKIE, sid, max_age=int(SESSION_TTL_S), httponly=True, samesite="Strict"
        )
        return response

    @app.post("/api/logout")
    def logout() -> Response:
        guard.logout(request.cookies.get(SESSION_COOKIE))
        response = jsonify(ok=True)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/api/overview")
    def overview() -> Response:
        return jsonify(console.overview(_station()))

    @app.get("/api/events")
    def events() -> Response:
        page = _number("page", 0, 0, MAX_PAGE)
        return jsonify(console.events(page, _number("size", 10, 1, 50), _station()))

    @app.get("/api/live.jpg")
    def live_jpeg() -> Response:
        after = _number("after", 0, 0, MAX_SEQ)
        viewer = request.args.get("viewer", "") or request.remote_addr or "?"
        heat = request.args.get("heat") == "1"
        got = live.request(viewer, station=_station(), heat=heat, after=after)
        if got is None:
            return Response(status=204)
        seq, encoded = got
        response = Response(encoded.jpeg, content_type="image/jpeg")
        response.headers["X-Frame-Seq"] = str(seq)
        response.headers["X-Frame-Index"] = str(encoded.frame.index)
        response.headers["X-Heat"] = (encoded.frame.heat_label or "") if encoded.heat else ""
        return response

    @app.get("/api/snapshots/<name>")
    def snapshot(name: str) -> Response:
        folder = actions.snapshots_of(_station())
        if folder is None or not SNAPSHOT_NAME.fullmatch(name):
            abort(404, "no such snapshot")
        return _file(folder / name)

    @app.get("/api/review")
    def review_list() -> Response:
        return jsonify(ids=review.ids()[::-1][:100])

    @app.get("/api/review/<item_id>/<name>")
    def review_file(item_id: str, name: str) -> Response:
        path = review.path(item_id, name)
        if path is None:
            abort(404, "no such review item")
        return _file(path)

    @app.post("/api/action/<verb>")
    def action(verb: str) -> tuple[Response, int]:
        reply = actions.run(verb, request.get_data(cache=False), _station())
        return jsonify(reply), 200 if reply["ok"] else 400

    @app.post("/api/review")
    def review_add() -> tuple[Response, int]:
        reply = actions.keep_for_review(request.get_data(cache=False), _station())
        return jsonify(reply), 200 if reply["ok"] else 409

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return app


def _number(name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name``: a plain decimal number in [low, high] (ASCII digits only, so
    no ``²`` and no 5,000-digit number reaches ``int``); anything else is a 400."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)):
        value = int(raw)
        if low <= value <= high:
            return value
    abort(400, f"{name} must be a whole number from {low} to {high}")


def _login_token() -> str:
    """The token of a login body ``{"token": "<text>"}``; anything else is a 400 (and is no
    wrong token: a malformed body can never be the right one)."""
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, RecursionError):
        body = None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        abort(400, 'expected {"token": "<the token>"}')
    try:
        token.encode("utf-8")
    except UnicodeEncodeError:
        abort(400, "the token must be text (UTF-8)")
    return token


def _file(path: Path) -> Response:
    try:
        data = path.read_bytes()
    except OSError:
        abort(404, "no such file")
    kind = "application/json" if path.suffix == ".json" else "image/jpeg"
    return Response(data, content_type=kind)


class ConsoleServer:
    """waitress serving ``app`` on ``host:port`` in a daemon thread, within the connection
    budgets of ``pi_inspect.edge.console.connections``; ``close()`` stops it."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = 4) -> None:
        from pi_inspect.edge.console.connections import create

        self._map: dict[int, Any] = {}
        self.servers = create(
            app,
            self._map,
            host=host,
            port=port,
            threads=threads,
            ident="pi-inspect",
            max_request_body_size=MAX_BODY * 4,
            clear_untrusted_proxy_headers=True,
        )
        self._server = self.servers[0]
        self.port = int(self._server.effective_port)
        self.host = host
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="console-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ConsoleServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        """waitress's loop, one poll at a time, so that closing happens on this thread."""
        from waitress import wasyncore

        while not self._stop.is_set():
            wasyncore.loop(timeout=1.0, map=self._map, count=1)
        self._server.task_dispatcher.shutdown(timeout=2)
        wasyncore.close_all(self._map)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._server.pull_trigger()  # wakes the poll
            self._thread.join(timeout=5)
        else:
            from waitress import wasyncore

            wasyncore.close_all(self._map)
