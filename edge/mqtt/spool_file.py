"""Opening the spool's SQLite file: make it, check it, or move an unreadable one aside.

A file that is not a readable database (garbage, truncated, an empty directory) raises
``Unreadable``; ``move_aside`` renames it ``<name>.corrupt-<time>`` with its WAL and SHM. A
device or a directory holding files raises ``OSError`` and is never moved: the path is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
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

# SQLite result codes that mean the file is not a (readable) database: move it aside.
UNREADABLE = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
SIDE_FILES = ("-wal", "-shm", "-journal")
ROOM = 64 * 1024  # free bytes a recovery needs: less is a full disk, whatever one write says


class Unreadable(Exception):
    """The spool file exists but is not a readable SQLite database."""


@dataclass(frozen=True)
class Opened:
    db: sqlite3.Connection
    depth: int  # rows in the file
    dropped: int  # the file's persistent count of dropped rows
    last_seq: int  # the highest sequence number the file ever gave out


def connect(path: Path, durable: bool) -> Opened:
    """Open (or make) the spool file; ``Unreadable`` if it is not a readable database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        if any(path.iterdir()):  # a path mistaken for the state dir: never moved
            raise OSError("a directory that holds files")
        raise Unreadable("an empty directory")
    if mode is not None and not stat.S_ISREG(mode):  # /dev/null, a FIFO: never moved
        raise OSError("not a regular file")
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash (SIGKILL); FULL also survives a power cut.
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        db.executescript(SCHEMA)
        check = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            raise Unreadable(str(check))
        depth, last = db.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
        seq_row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        dropped = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        if getattr(exc, "sqlite_errorname", "") in UNREADABLE:
            raise Unreadable(str(exc)) from None
        raise
    except BaseException:
        db.close()
        raise
    last_seq = max(int(last or 0), int(seq_row[0]) if seq_row else 0)
    return Opened(db, int(depth), int(dropped[0]), last_seq)


def move_aside(path: Path, now: float) -> Path:
    """Rename the unreadable file (and its WAL/SHM) to ``<name>.corrupt-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while kept.exists() or kept.is_symlink():
        n += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, kept)
    for side in SIDE_FILES:
        source = path.with_name(path.name + side)
        if source.exists():
            try:
                os.replace(source, kept.with_name(kept.name + side))
            except OSError:
                source.unlink(missing_ok=True)
    return kept


def free_bytes(directory: Path) -> int:
    try:
        st = os.statvfs(directory)
    except OSError:
        return ROOM  # unknown: let the write itself tell
    return st.f_bavail * st.f_frsize


def salvage(db: sqlite3.Connection) -> dict[int, tuple[str, bytes]]:
    """Every event still readable in a damaged spool, by sequence number: read from the oldest
    up to the damage, then from the newest down to it (events written after the damage sit on
    the newest pages), so what the damage did not touch is not lost with the file."""
    found: dict[int, tuple[str, bytes]] = {}
    for order in ("ASC", "DESC"):
        try:
            for seq, topic, payload in db.execute(
                f"SELECT seq, topic, payload FROM events ORDER BY seq {order}"
            ):
                found[int(seq)] = (str(topic), bytes(payload))
        except sqlite3.Error:
            continue
    return found
