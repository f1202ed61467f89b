"""Desired state: what the workstation wants a station to run, and the station applying it.

The workstation publishes, retained, on ``<prefix>/<device>/desired`` (schema 1)::

    {"schema": 1, "rollout": "r-20261207-1", "mode": "shadow" | "promote" | "rollback",
     "bundle": {"name": "seam", "sha256": "<manifest content sha256>",
                "url": "http://workstation.lan:8765/<sha256>.tar"}}

(``"mode": "clear"`` with ``"bundle": null`` takes any candidate out of shadow.) ``rollback``
undoes this bundle: out of shadow, and where the fleet put it in service, ``current`` goes back
to ``previous`` (checked first, as ``deploy --rollback`` does; ``station.use_desired``); nothing
is fetched for it.

``Applier`` fetches the bundle (only from ``[fleet] url_prefix``, at most ``max_bytes``),
checks that its manifest is the one named (the bundle's identity), installs it as ``deploy``
does (verified where it landed, its golden set run in a child process) and then runs it in
shadow or switches ``current`` to it, through the callbacks the station gives it. A bundle it
cannot apply leaves the station on what it runs; the outcome (``applying``, ``applied``,
``failed`` with the reason) is in its stats as ``desired``, and so in the station report.
"""

from __future__ import annotations

import http.client
import logging
import queue
import ssl
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_inspect.edge.errors import PiInspectError
from pi_inspect.edge.health import Health

log = logging.getLogger(__name__)

SCHEMA = 1
MODES = ("shadow", "promote", "rollback", "clear")  # clear: no bundle in shadow any more
FETCH_TIMEOUT_S = 60.0


class InvalidDesired(PiInspectError, ValueError):
    """A desired-state message that is not schema 1 as documented (the message says why)."""


class FetchFailed(PiInspectError, ConnectionError):
    """The bundle could not be fetched (the server was away, the link broke): worth another try
    when the same desired state comes again, unlike a bundle that was fetched and refused."""


@dataclass(frozen=True)
class Desired:
    rollout: str
    mode: str
    name: str
    sha256: str
    url: str

    def to_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout, "mode": self.mode, "name": self.name,
                "sha256": self.sha256}  # fmt: skip


def parse_desired(value: Any) -> Desired:
    """A desired-state payload (decoded JSON) as ``Desired``; ``InvalidDesired`` otherwise."""
    if not isinstance(value, dict) or value.get("schema") != SCHEMA:
        raise InvalidDesired(f"expected a JSON object with schema {SCHEMA}")
    bundle = value.get("bundle")
    if value.get("mode") == "clear" and bundle is None and isinstance(value.get("rollout"), str):
        if set(value) - {"schema", "rollout", "mode", "bundle"}:
            raise InvalidDesired("expected schema, rollout, mode and bundle only")
        return Desired(value["rollout"], "clear", "", "", "")
    if set(value) - {"schema", "rollout", "mode", "bundle"} or not isinstance(bundle, dict):
        raise InvalidDesired("expected schema, rollout, mode and bundle only")
    fields = (
        value.get("rollout"),
        value.get("mode"),
        *(bundle.get(k) for k in ("name", "sha256", "url")),
    )  # noqa: E501
    if not all(isinstance(f, str) and f for f in fields) or set(bundle) - {"name", "sha256", "url"}:
        raise InvalidDesired("rollout, mode, bundle.name, bundle.sha256 and bundle.url are strings")
    rollout, mode, name, sha256, url = fields
    if mode not in MODES:
        raise InvalidDesired(f"mode must be one of {', '.join(MODES)}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InvalidDesired("bundle.sha256 must be 64 lowercase hex digits")
    return Desired(rollout, mode, name, sha256, url)


Install = Callable[[Path], str]  # a bundle folder -> its name in the models directory
# (mode, installed name) shadows or promotes it; ("rollback", sha256) undoes that bundle;
# ("clear", "") empties the shadow slot
Use = Callable[[str, str], None]


class Applier:
    """Applies desired states one at a time on a thread of its own; thread-safe ``submit``."""

    def __init__(
        self, url_prefix: str, max_bytes: int, install: Install, use: Use,
        clock: Callable[[], float] = time.time, ca_file: Path | None = None,
    ) -> None:  # fmt: skip
        self._prefix, self._max_bytes, self._ca_file = url_prefix, max_bytes, ca_file
        self._install, self._use, self._clock = install, use, clock
        self._lock = threading.Lock()
        self._outcome: dict[str, Any] | None = None
        self._last: Desired | None = None  # the last one submitted: a repeat is not redone
        self._retry = False  # ... unless its fetch failed
        self._jobs: queue.Queue[Desired | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="fleet-desired", daemon=True)
        self._thread.start()

    def submit(self, desired: Desired) -> bool:
        """Apply ``desired`` unless it is the one last asked for (a retained message comes
        again after every reconnect); False when it was a repeat."""
        with self._lock:
            if desired == self._last and not self._retry:
                return False
            self._last, self._retry = desired, False
            self._outcome = {**desired.to_dict(), "state": "applying", "reason": None,
                             "at": round(self._clock(), 3)}  # fmt: skip
        self._jobs.put(desired)
        return True

    def health(self) -> Health:
        with self._lock:
            return Health(stats={"desired": dict(self._outcome)} if self._outcome else {})

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5.0)

    def _work(self) -> None:
        while (desired := self._jobs.get()) is not None:
            try:
                self._apply(desired)
            except Exception as exc:  # whatever went wrong: the station keeps what it runs
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error("desired %s of %s refused: %s", desired.mode, desired.name, reason)
                self._finish(desired, "failed", reason, retry=isinstance(exc, FetchFailed))
            else:
                log.info(
                    "desired %s of %s applied (rollout %s)",
                    desired.mode,
                    desired.name,
                    desired.rollout,
                )  # noqa: E501
                self._finish(desired, "applied", None)

    def _finish(
        self, desired: Desired, state: str, reason: str | None, retry: bool = False
    ) -> None:
        with self._lock:
            if self._last == desired:
                self._retry = retry
                self._outcome = {**desired.to_dict(), "state": state, "reason": reason,
                                 "at": round(self._clock(), 3)}  # fmt: skip

    def _apply(self, desired: Desired) -> None:
        from pi_inspect.edge.bundle import read_manifest

        if desired.mode == "clear":
            self._use("clear", "")
            return
        if desired.mode == "rollback":
            self._use("rollback", desired.sha256)
            return
        if not desired.url.startswith(self._prefix):
            raise InvalidDesired(f"bundle URL {desired.url} is not under fleet.url_prefix")
        with tempfile.TemporaryDirectory(prefix="pi-inspect-desired-") as tmp:
            archive = Path(tmp) / "bundle.tar"
            self._fetch(desired.url, archive)
            folder = _unpack(archive, Path(tmp) / "bundle")
            found = read_manifest(folder).content_sha256
            if found != desired.sha256:
                raise InvalidDesired(
                    f"the bundle fetched is {found[:12]}, not {desired.sha256[:12]}"
                )
            name = self._install(folder)
        self._use(desired.mode, name)

    def _fetch(self, url: str, dest: Path) -> None:
        context = None
        if url.startswith("https://"):  # verified against the system's CAs or ca_file
            context = ssl.create_default_context(
                cafile=str(self._ca_file) if self._ca_file is not None else None
            )
        try:
            with (
                urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S, context=context) as answer,
                dest.open("wb") as out,
            ):  # noqa: S310 - the prefix is checked
                total = 0
                while chunk := answer.read(1 << 16):
                    total += len(chunk)
                    if total > self._max_bytes:
                        raise InvalidDesired(
                            f"bundle larger than fleet.max_bytes ({self._max_bytes})"
                        )
                    out.write(chunk)
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:  # noqa: E501 - HTTPError, a cut download
            raise FetchFailed(f"cannot fetch {url}: {getattr(exc, 'reason', exc)}") from None


def _unpack(archive: Path, dest: Path) -> Path:
    """The bundle folder in ``archive``: regular files only, nothing outside ``dest``."""
    dest.mkdir()
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        if not all(m.isfile() or m.isdir() for m in members):
            raise InvalidDesired("the bundle archive holds links or devices")
        tar.extractall(dest, members=members, filter="data")
    manifests = sorted(dest.rglob("manifest.json"))
    if len(manifests) != 1:
        raise InvalidDesired("the bundle archive must hold exactly one manifest.json")
    return manifests[0].parent
