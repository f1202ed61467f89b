"""Who a client is, and the one throttle for wrong tokens: it slows the client that sent them, and
no one else.

Every way a token is presented (the login form or ``POST /api/login``, and the
``Authorization: Bearer`` header) goes through the same :class:`Throttle`:

- A client is its address: an IPv4 address, or an IPv6 /64 (one host usually holds a whole /64,
  so counting single IPv6 addresses would give it 2**64 fresh starts).
- A client's first ``FREE_FAILURES`` wrong tokens are checked at once. After that each wrong
  token makes it wait twice as long as the last before its next token is even compared: 1 s,
  2 s, 4 s ... up to ``MAX_WAIT_S``. While it waits, every token it sends, right or wrong, is
  refused unread (HTTP 429 with ``Retry-After``): waiting tells it nothing, so its guesses stay
  bounded (about 3600 / ``MAX_WAIT_S`` an hour once at the cap).
- A right token from a client that is not waiting always works and forgets its failures. One
  client's failures never slow another, so an attacker cannot lock the operator out from another
  address; a session the operator already has keeps working even while its address waits.
- A client's failures are forgotten ``FORGET_S`` after its last one; at most ``MAX_CLIENTS``
  clients are remembered (the longest quiet is forgotten first), so memory stays bounded.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pi_inspect.edge.errors import PiInspectError

FREE_FAILURES = 5  # wrong tokens a client may send before it has to wait
FIRST_WAIT_S = 1.0  # the first wait; each further wrong token doubles it
MAX_WAIT_S = 300.0  # the longest wait
FORGET_S = 3600.0  # failures forgotten this long after a client's last one
MAX_CLIENTS = 4096  # clients with failures remembered at once


class Throttled(PiInspectError):
    """The client must wait ``retry_after`` seconds before its next token is compared."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"too many wrong tokens from this address; try again in {self.retry_after} s"
        )


def client_key(address: str | None) -> str:
    """The client an address belongs to: the IPv4 address, or the /64 of an IPv6 address."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return address or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = ipaddress.IPv6Address(int(ip) & ~((1 << 64) - 1))
        return f"{prefix}/64"
    return str(ip)


@dataclass
class _Record:
    failures: int
    last: float  # time of the last wrong token
    until: float  # no token is compared before this


class Throttle:
    """Wrong-token bookkeeping per client (thread-safe); time comes from ``clock``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}  # oldest last failure first

    def attempt(self, client: str, right: bool) -> bool:
        """Whether the token ``client`` sent counts as right; raises :class:`Throttled`, whatever
        the token, while the client has to wait. Every wrong token that was compared counts."""
        now = self._clock()
        with self._lock:
            record = self._records.get(client)
            if record is not None and now - record.last >= FORGET_S:
                del self._records[client]
                record = None
            if record is not None and now < record.until:
                raise Throttled(record.until - now)
            if right:
                self._records.pop(client, None)
                return True
            if record is None:
                record = _Record(0, now, now)
                while len(self._records) >= MAX_CLIENTS:
                    self._records.pop(next(iter(self._records)))
            else:
                del self._records[client]  # re-inserted last: the order is by last failure
            record.failures += 1
            record.last = now
            beyond = record.failures - FREE_FAILURES
            if beyond > 0:
                record.until = now + min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** min(beyond - 1, 32))
            self._records[client] = record
            return False

    def waiting(self, client: str) -> float:
        """Seconds ``client`` still has to wait (0: its next token is compared)."""
        now = self._clock()
        with self._lock:
            record = self._records.get(client)
            if record is None or now - record.last >= FORGET_S:
                return 0.0
            return max(0.0, record.until - now)
