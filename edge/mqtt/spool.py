"""The defect-event spool: no defect event is lost to a broker outage, a crash or a bad disk.

Each event is one row in a SQLite table (WAL mode, one small transaction) *before* it is
published, and the row is deleted only when the broker acknowledges it (QoS 1 PUBACK). Rows
carry a sequence number, so a replay after a restart -- even after SIGKILL -- is in the
original order. The spool is bounded: when full the oldest rows are dropped and counted.

Storage faults never reach the caller. A spool file that cannot be read (garbage, truncated, an
empty directory) is renamed ``<name>.corrupt-<time>`` (kept for inspection) and a fresh one is
made; one damaged while running, found on the write or the read path alike, is handled the same
way at once, after every event still readable in it is taken into memory (and from there into
the fresh file); a device or a directory holding files is never moved (the path is wrong, not the file).
When the file cannot be opened or written at all (read-only or full disk, I/O error), events are
kept in memory -- bounded by the same ``max_events`` -- and are published from there just the
same; the disk is tried again every ``retry_s`` and what memory holds is written to it as soon
as it takes writes again. ``health()`` says what is wrong and how many events are in memory only
(lost if the process is killed now). The spool never logs a fault itself: its owner reports it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pi_inspect.edge.mqtt.spool_file import (
    ROOM,
    UNREADABLE,
    Unreadable,
    connect,
    free_bytes,
    move_aside,
    salvage,
)

log = logging.getLogger(__name__)


def read_depth(path: Path) -> int | None:
    """Messages waiting in the spool at ``path``, read without writing (another process or
    thread may own the spool); None if there is no readable spool there."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        db.close()


@dataclass(frozen=True)
class SpooledMessage:
    seq: int
    topic: str
    payload: bytes


@dataclass(frozen=True)
class SpoolHealth:
    """What the spool's owner reports: a fault line and the counts behind it."""

    fault: str | None  # one line while events cannot be written to disk; None when they can
    depth: int  # events waiting for an acknowledgement (on disk and in memory)
    dropped: int  # events dropped because the spool was full
    unpersisted: int  # events held in memory only: lost if the process is killed now
    moved_aside: str | None  # where an unreadable spool file was kept, if one was


class Spool:
    """A bounded FIFO of (topic, payload) in SQLite, safe to use from several threads.

    ``append``, ``after``, ``remove`` and ``remove_many`` never raise on a storage fault.
    """

    def __init__(
        self,
        path: Path,
        max_events: int,
        durable: bool = False,
        *,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.path = Path(path)
        self._max_events, self._durable, self._retry_s = max_events, durable, retry_s
        self._clock, self._wall_clock = clock, wall_clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._mem: dict[int, tuple[str, bytes]] = {}  # seq -> message, ascending seq
        self._next_seq, self._disk_depth = 1, 0
        self._disk_dropped = 0  # the file's persistent counter
        self._mem_dropped = 0  # dropped from memory while the disk could not take them
        self._fault: str | None = None
        self._moved_aside: Path | None = None
        self._retry_at = 0.0
        with self._lock:
            self._open()

    # -- opening ----------------------------------------------------------------------------

    def _open(self) -> None:
        """Open (or make) the file; move an unreadable one aside; else fall back to memory."""
        self._retry_at = self._clock() + self._retry_s
        try:
            try:
                opened = connect(self.path, self._durable)
            except Unreadable as exc:
                self._moved_aside = move_aside(self.path, self._wall_clock())
                log.warning(
                    "MQTT spool %s was unreadable (%s); kept it as %s and started a new one",
                    self.path,
                    exc,
                    self._moved_aside.name,
                )
                opened = connect(self.path, self._durable)
        except (Unreadable, sqlite3.Error, OSError) as exc:
            self._db = None
            self._fault = f"MQTT spool {self.path} cannot be used ({_reason(exc)})"
            return
        self._db = opened.db
        self._disk_depth, self._disk_dropped = opened.depth, opened.dropped
        # Sequence numbers continue after both the file's and memory's: order survives.
        self._next_seq = max(self._next_seq, opened.last_seq + 1)
        self._fault = None

    # -- falling back to memory and back ----------------------------------------------------

    def _disk_failed(self, exc: BaseException) -> None:
        self._fault = f"MQTT spool {self.path} cannot be written ({_reason(exc)})"
        self._retry_at = self._clock() + self._retry_s
        if getattr(exc, "sqlite_errorname", "") in UNREADABLE and self._db is not None:
            # Damaged while running: keep what is readable, set the file aside, start afresh.
            kept = {**salvage(self._db), **self._mem}
            self._close_db()
            self._mem = dict(sorted(kept.items())[-self._max_events :])
            self._disk_depth = 0
            # A fresh file is made on the first call after retry_s (a failing card: one a retry)
            with contextlib.suppress(OSError):
                self._moved_aside = move_aside(self.path, self._wall_clock())

    def _maybe_recover(self) -> None:
        """Every ``retry_s`` while faulted: reopen the file and write memory's events to it."""
        if self._closed or (self._db is not None and not self._mem and self._fault is None):
            return
        if self._clock() < self._retry_at:
            return
        if free_bytes(self.path.parent) < ROOM:  # still full: try again in retry_s
            self._retry_at = self._clock() + self._retry_s
            return
        if self._db is None:
            self._open()
            if self._db is None:
                return
        rows = [(seq, topic, payload) for seq, (topic, payload) in self._mem.items()]
        try:  # memory's events, or else a write that changes nothing: proof the disk is back
            self._insert(rows, probe=not rows)
        except sqlite3.Error as exc:
            self._disk_failed(exc)
            return
        self._mem.clear()
        self._fault = None

    def _insert(self, rows: list[tuple[int, str, bytes]], probe: bool = False) -> None:
        """Insert rows with their own sequence numbers and trim the oldest beyond the bound."""
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("spool is not open")
        db.execute("BEGIN IMMEDIATE")
        try:
            if probe:  # rewrites one page: fails as an insert would on a full or failing disk
                db.execute("UPDATE counters SET value = value WHERE name = 'dropped'")
            db.executemany("INSERT INTO events (seq, topic, payload) VALUES (?, ?, ?)", rows)
            depth = self._disk_depth + len(rows)
            overflow = depth - self._max_events
            if overflow > 0:
                cur = db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                    (overflow,),
                )
                db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (cur.rowcount,)
                )
                depth -= cur.rowcount
                dropped = cur.rowcount
            else:
                dropped = 0
            db.execute("COMMIT")
        except BaseException:
            self._rollback(db)
            raise
        self._disk_depth = depth
        self._disk_dropped += dropped

    def _rollback(self, db: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                db.execute("ROLLBACK")
        with contextlib.suppress(sqlite3.Error):
            self._disk_depth = int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def _close_db(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    # -- the queue --------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes) -> int:
        """Store one message and return its sequence number; drop the oldest if full.

        On disk when the disk takes it, else in memory; never raises on a storage fault.
        """
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._maybe_recover()
            if self._db is not None and not self._mem:
                try:
                    self._insert([(seq, topic, payload)])
                    return seq
                except sqlite3.Error as exc:
                    self._disk_failed(exc)
            self._mem[seq] = (topic, payload)
            while len(self._mem) > self._max_events:
                del self._mem[next(iter(self._mem))]
                self._mem_dropped += 1
            return seq

    def after(self, seq: int, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages with a sequence number greater than ``seq``, oldest first."""
        with self._lock:
            self._maybe_recover()
            rows: list[tuple[int, str, bytes]] = []
            if self._db is not None and self._disk_depth > 0:
                try:
                    rows = self._db.execute(
                        "SELECT seq, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                        (seq, limit),
                    ).fetchall()
                except sqlite3.Error as exc:
                    self._disk_failed(exc)
            if self._mem:
                memory = ((s, t, p) for s, (t, p) in self._mem.items() if s > seq)
                rows = sorted([*rows, *itertools.islice(memory, limit)])[:limit]
        return [SpooledMessage(int(s), str(t), bytes(p)) for s, t, p in rows]

    def remove(self, seq: int) -> None:
        """Forget an acknowledged message (a no-op if it was already removed or dropped)."""
        self.remove_many([seq])

    def remove_many(self, seqs: Iterable[int]) -> None:
        """Forget acknowledged messages in one transaction (one lock, one commit).

        A row the disk cannot delete now stays there and is sent again after a restart (the
        subscriber sees the same event id twice, never a lost one).
        """
        with self._lock:
            on_disk = [(s,) for s in seqs if self._mem.pop(s, None) is None]
            db = self._db
            if not on_disk or db is None or self._disk_depth == 0:
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                cur = db.executemany("DELETE FROM events WHERE seq = ?", on_disk)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                self._disk_failed(exc)
                return
            self._disk_depth -= cur.rowcount

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement (on disk and in memory)."""
        return self._disk_depth + len(self._mem)

    @property
    def dropped(self) -> int:
        """Dropped because the spool was full: the file's lifetime count + memory's this run."""
        return self._disk_dropped + self._mem_dropped

    @property
    def unpersisted(self) -> int:
        return len(self._mem)  # held in memory only: lost if the process is killed now

    def health(self) -> SpoolHealth:
        """The fault line and counts; also retries the disk when a retry is due."""
        with self._lock:
            self._maybe_recover()
            return SpoolHealth(
                fault=self._fault,
                depth=self.depth,
                dropped=self.dropped,
                unpersisted=len(self._mem),
                moved_aside=str(self._moved_aside) if self._moved_aside is not None else None,
            )

    def close(self) -> None:
        """Write what memory holds to disk if it can (one last try), then close."""
        with self._lock:
            if self._closed:
                return
            if self._mem:
                self._retry_at = float("-inf")
                self._maybe_recover()
            self._closed = True
            self._close_db()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text
