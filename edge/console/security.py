"""Who may view and act: loopback is trusted, any other address needs the token.

- On 127.0.0.1 / ::1 the machine's own users are trusted; the ``Host`` header must name the
  console itself, so a web page that rebinds its DNS name to 127.0.0.1 gets nothing.
- On any other address, actions (and viewing, unless ``allow_readonly_view``) need the token
  from the credentials file: as ``Authorization: Bearer <token>`` (scripts, Prometheus) or a
  session cookie the page gets by posting the token to ``/api/login`` (HttpOnly, SameSite=Strict).
  Five wrong tokens in a minute lock the login for a minute.
- Every action (a POST) must carry the header ``X-Pi-Inspect: 1``, which a cross-site form or
  image cannot send and a cross-site script may only send after a CORS preflight this server
  never answers; an ``Origin`` header, when present, must be the console's own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pi_inspect.edge.errors import PiInspectError

ACTION_HEADER = "X-Pi-Inspect"
SESSION_COOKIE = "pi_inspect_session"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 64
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def read_token(path: str | Path) -> str:
    """The first line of the credentials file; at least 16 characters."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PiInspectError(f"console.credentials: cannot read {path}: {exc}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise PiInspectError(f"console.credentials: {path} must hold a token of 16+ characters")
    return token


class Guard:
    """Decides, per request, whether it may see or do something (thread-safe)."""

    def __init__(
        self,
        *,
        loopback: bool,
        port: int,
        host: str,
        token: str | None,
        allow_readonly_view: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not loopback and not token:
            raise PiInspectError("console.credentials: a token is required off loopback")
        self.loopback = loopback
        self.allow_readonly_view = allow_readonly_view
        self._token = token
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self._failures: deque[float] = deque(maxlen=5)
        self._host = host
        self._hosts: set[str] = set()
        self.set_port(port)

    def set_port(self, port: int) -> None:
        """The port actually bound (a test binds port 0); the Host header must name it."""
        if not self.loopback:
            return
        names = {self._host, "localhost", "127.0.0.1", "[::1]"}
        if ":" in self._host:
            names.add(f"[{self._host}]")
        self._hosts = {f"{name}:{port}" for name in names}

    # -- checks --------------------------------------------------------------------------------
    def host_ok(self, host_header: str | None) -> bool:
        """Loopback: the Host header must be the console's own (DNS rebinding)."""
        return not self.loopback or (host_header or "") in self._hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        return origin in (f"http://{host_header}", f"https://{host_header}")

    def authenticated(self, authorization: str | None, cookie: str | None) -> bool:
        if self._token is None:
            return True
        if authorization and authorization.startswith("Bearer "):
            return hmac.compare_digest(authorization[7:].encode(), self._token.encode())
        if cookie:
            with self._lock:
                expires = self._sessions.get(cookie)
                if expires is not None and expires > self._clock():
                    return True
                self._sessions.pop(cookie, None)
        return False

    def needs_login_to_view(self) -> bool:
        return self._token is not None and not self.allow_readonly_view

    # -- login ---------------------------------------------------------------------------------
    def login(self, token: str) -> str | None:
        """A new session id for the right token; None for a wrong one (or while locked)."""
        if self._token is None:
            return None
        now = self._clock()
        with self._lock:
            if len(self._failures) == self._failures.maxlen and now - self._failures[0] < 60.0:
                return None
            if not hmac.compare_digest(token.encode(), self._token.encode()):
                self._failures.append(now)
                return None
            for sid in [s for s, exp in self._sessions.items() if exp <= now]:
                del self._sessions[sid]
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            sid = secrets.token_urlsafe(32)
            self._sessions[sid] = now + SESSION_TTL_S
            return sid

    def logout(self, cookie: str | None) -> None:
        with self._lock:
            self._sessions.pop(cookie or "", None)
