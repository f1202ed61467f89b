"""Connection budgets for the console's waitress server: no client can fill its connections.

waitress stops accepting once ``connection_limit`` connections are open, and an idle one keeps
its place until ``channel_timeout``: a hundred idle sockets from anyone shut everyone out. This
server keeps budgets of its own, applied when it accepts a connection:

- one client (an IPv4 address or an IPv6 /64) holds at most ``PER_CLIENT`` connections, all
  clients together ``MAX_OPEN``;
- a connection beyond a budget takes the place of an idle one (no request queued or served,
  nothing left to send): the least recently active of its own client's, or, at ``MAX_OPEN``,
  of the client holding the most. Only when none is idle is the new connection closed. So the
  client that hoards idle connections loses them, and a real request, from another client or
  from the same one, is answered (a browser opens a new connection for a keep-alive one that
  was closed);
- a connection that has sent nothing is closed after ``FIRST_REQUEST_S``, an idle keep-alive
  one after ``IDLE_S``.

waitress' own ``connection_limit`` stays above ``MAX_OPEN``, as a backstop never reached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from pi_inspect.edge.console.throttle import client_key

log = logging.getLogger(__name__)

PER_CLIENT = 16  # connections one client may hold (a browser opens up to 6 to one site)
MAX_OPEN = 64  # connections from all clients together
FIRST_REQUEST_S = 10  # a connection that sent nothing for this long is closed
IDLE_S = 30  # an idle keep-alive connection is closed after this
CLEANUP_S = 1  # how often the timeouts above are checked
WARN_EVERY_S = 60.0  # at most one log line this often about a client over its budget


class _Channel(HTTPChannel):
    """waitress' HTTP channel that knows its client and is admitted against the budgets."""

    def __init__(self, server: BudgetServer, sock: Any, addr: Any, adj: Any, map=None) -> None:
        super().__init__(server, sock, addr, adj, map=map)
        self.client = client_key(addr[0] if isinstance(addr, tuple) and addr else None)
        server.admit(self)


def _idle(channel: _Channel) -> bool:
    """Nothing queued, served or left to send: closing it loses no answer."""
    return not channel.requests and not channel.total_outbufs_len


class BudgetServer(TcpWSGIServer):
    """A waitress TCP server that applies the connection budgets (on its loop's thread)."""

    channel_class = _Channel

    def __init__(self, *args: Any, warn_clock: Callable[[], float] = time.monotonic, **kw: Any):
        self._warn_clock = warn_clock
        self._warned = -1e18
        super().__init__(*args, **kw)

    def _open(self, new: _Channel) -> list[_Channel]:
        """The open connections but ``new``, leaving out those already closing."""
        return [
            c
            for c in list(self._map.values())
            if isinstance(c, _Channel)
            and c is not new
            and c.connected
            and not (c.will_close or c.close_when_flushed)
        ]

    def admit(self, new: _Channel) -> None:
        """Make room for ``new`` within the budgets, or close it when nothing is idle."""
        channels = self._open(new)
        mine = [c for c in channels if c.client == new.client]
        if len(mine) >= PER_CLIENT:
            candidates = mine
        elif len(channels) >= MAX_OPEN:
            by_client: dict[str, list[_Channel]] = {}
            for c in channels:
                by_client.setdefault(c.client, []).append(c)
            candidates = []
            for group in sorted(by_client.values(), key=len, reverse=True):
                if any(_idle(c) for c in group):
                    candidates = group
                    break
        else:
            return
        idle = [c for c in candidates if _idle(c)]
        victim = min(idle, key=lambda c: c.last_activity) if idle else new
        self._warn(new.client, len(mine), len(channels), "its" if victim is new else "an idle")
        victim.handle_close()

    def _warn(self, client: str, theirs: int, total: int, which: str) -> None:
        now = self._warn_clock()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning(
                "console: connection budget reached (%d open, %d of them from %s): closing %s "
                "connection (this line at most once a minute)",
                total,
                theirs,
                client,
                which,
            )

    def maintenance(self, now: float) -> None:
        """Marks for closing the connections idle too long at ``now``: ``IDLE_S`` (waitress'
        ``channel_timeout``), or ``FIRST_REQUEST_S`` for one that has sent nothing at all."""
        for channel in list(self.active_channels.values()):
            if channel.requests:
                continue
            quiet = channel.last_activity == channel.creation_time and channel.request is None
            limit = FIRST_REQUEST_S if quiet else self.adj.channel_timeout
            if channel.last_activity < now - limit:
                channel.will_close = True


def create(app: Any, map: dict[int, Any], **kw: Any) -> list[BudgetServer]:
    """Listening servers on one socket map (one per address ``host`` resolves to), sharing one
    pool of request threads; the budgets count the map's connections, whichever listener took
    them."""
    adj = Adjustments(
        connection_limit=MAX_OPEN + 8,
        channel_timeout=IDLE_S,
        cleanup_interval=CLEANUP_S,
        **kw,
    )
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    return [
        BudgetServer(app, map, dispatcher=dispatcher, adj=adj, sockinfo=sockinfo)
        for sockinfo in adj.listen
    ]
