"""The on-disk defect-event spool: no defect event is lost to a broker outage or a crash.

Each event is one row in a SQLite table (WAL mode, one small transaction) *before* it is
published, and the row is deleted only when the broker acknowledges it (QoS 1 PUBACK). Rows
carry an autoincrement sequence, so a replay after a restart -- even after SIGKILL -- is in the
original order. The spool is bounded: when full the oldest rows are dropped and counted.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


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


class Spool:
    """A bounded FIFO of (topic, payload) in SQLite, safe to use from several threads."""

    def __init__(self, path: Path, max_events: int, durable: bool = False) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max_events = max_events
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash (SIGKILL); FULL also survives a power cut.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("spool is closed")
        return self._db

    def append(self, topic: str, payload: bytes) -> int:
        """Store one message durably and return its sequence number; drop the oldest if full."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                seq = db.execute(
                    "INSERT INTO events (topic, payload) VALUES (?, ?)", (topic, payload)
                ).lastrowid
                self._depth += 1
                overflow = self._depth - self._max_events
                if overflow > 0:
                    cur = db.execute(
                        "DELETE FROM events WHERE seq IN "
                        "(SELECT seq FROM events ORDER BY seq LIMIT ?)",
                        (overflow,),
                    )
                    db.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'dropped'",
                        (cur.rowcount,),
                    )
                    self._depth -= cur.rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._depth = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                raise
            return int(seq)

    def after(self, seq: int, limit: int) -> list[SpooledMessage]:
        """Up to ``limit`` messages with a sequence number greater than ``seq``, oldest first."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT seq, topic, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (seq, limit),
                )
                .fetchall()
            )
        return [SpooledMessage(int(s), str(t), bytes(p)) for s, t, p in rows]

    def remove(self, seq: int) -> None:
        """Forget an acknowledged message (a no-op if it was already removed or dropped)."""
        with self._lock:
            if self._db is None:
                return
            cur = self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
            self._depth -= cur.rowcount

    def remove_many(self, seqs: list[int]) -> None:
        """Forget several acknowledged messages in one transaction (one lock, one commit)."""
        if not seqs:
            return
        with self._lock:
            if self._db is None:
                return
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._depth -= cur.rowcount

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Messages dropped because the spool was full, over the spool file's lifetime."""
        with self._lock:
            if self._db is None:
                return 0
            return int(
                self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
