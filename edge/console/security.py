"""Who may view and act: loopback is trusted, any other address needs the token.

- On 127.0.0.1 / ::1 the machine's own users are trusted; the ``Host`` header must name this
  machine's loopback (``localhost``, 127.x.x.x or [::1], on any port: an SSH tunnel may use any
  local port), so a web page that rebinds its DNS name to 127.0.0.1 gets nothing.
- On any other address, actions (and viewing, unless ``allow_readonly_view``) need the token
  from the credentials file: as ``Authorization: Bearer <token>`` (scripts, Prometheus) or a
  session cookie the page gets by posting the token to ``/api/login`` (HttpOnly, SameSite=Strict).
  Wrong tokens on either path slow down the client address that sent them, and no other
  (``pi_inspect.edge.console.throttle``).
- Every action (a POST) must carry the header ``X-Pi-Inspect: 1``, which a cross-site form or
  image cannot send and a cross-site script may only send after a CORS preflight this server
  never answers; an ``Origin`` header, when present, must be the console's own.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pi_inspect.edge.console.throttle import Throttle
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
        token: str | None,
        allow_readonly_view: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not loopback and not token:
            raise PiInspectError("console.credentials: a token is required off loopback")
        self.loopback = loopback
        self.allow_readonly_view = allow_readonly_view
        self._token = token.encode("utf-8") if token is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}
        self.throttle = Throttle(clock)

    # -- checks --------------------------------------------------------------------------------
    def host_ok(self, host_header: str | None) -> bool:
        """Off loopback: any (the token guards). On loopback: the Host header must name this
        machine's loopback, ``localhost``, a 127.x.x.x address or ``[::1]``, with any port or
        none.

        DNS rebinding makes a name of the attacker's resolve to 127.0.0.1, but the browser then
        sends that name, never one of these, so the name alone is the defence. The port is not:
        a page on another local port is another origin, held off by the action header and the
        Origin check, and an SSH tunnel may listen on any local port (two stations tunnelled
        to one laptop cannot both use the console's own)."""
        if not self.loopback:
            return True
        name, port = _split_host(host_header or "")
        if port is not None and not (port.isascii() and port.isdigit() and len(port) <= 5):
            return False
        if port is not None and not 1 <= int(port) <= 65535:
            return False
        name = name.lower()
        if name == "localhost" or name == "[::1]":
            return True
        try:
            return ipaddress.IPv4Address(name).is_loopback
        except ValueError:
            return False

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        return origin in (f"http://{host_header}", f"https://{host_header}")

    def authenticated(self, client: str, authorization: str | None, cookie: str | None) -> bool:
        """A right bearer token (throttled per client, see ``login``) or a live session."""
        if self._token is None:
            return True
        if authorization and authorization.startswith("Bearer "):
            right = hmac.compare_digest(_raw(authorization[7:]), self._token)
            return self.throttle.attempt(client, right)
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
    def login(self, client: str, token: str) -> str | None:
        """A new session id for the right token; None for a wrong one. Raises ``Throttled``,
        right token or wrong, while ``client`` has to wait for its earlier wrong ones."""
        if self._token is None:
            return None
        right = hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self._token)
        if not self.throttle.attempt(client, right):
            return None
        now = self._clock()
        with self._lock:
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


def _split_host(host: str) -> tuple[str, str | None]:
    """A Host header's name and port (None without one); ``[::1]:9000`` keeps its brackets."""
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        if not bracket:
            return host, None
        return name + "]", rest[1:] if rest.startswith(":") else (rest or None)
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, None)


def _raw(header: str) -> bytes:
    """A header's value as the bytes the client sent (WSGI hands them over as Latin-1)."""
    try:
        return header.encode("latin-1")
    except UnicodeEncodeError:
        return header.encode("utf-8", "surrogatepass")
