"""The spool under storage faults, with real files and real filesystems: it never raises, keeps
events (in memory when the disk will not take them) and says what is wrong in ``health()``."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pi_inspect.edge.mqtt.spool import Spool


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rows(path: Path) -> list[tuple[str, bytes]]:
    with sqlite3.connect(path) as db:
        return [
            (t, bytes(p)) for t, p in db.execute("SELECT topic, payload FROM events ORDER BY seq")
        ]


def make_valid_spool(path: Path, n: int) -> None:
    with Spool(path, max_events=10_000) as spool:
        for i in range(n):
            spool.append("t", os.urandom(300) + str(i).encode())
    for side in ("-wal", "-shm"):
        path.with_name(path.name + side).unlink(missing_ok=True)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_unreadable_spool_is_moved_aside_and_a_fresh_one_takes_events(tmp_path: Path, damage):
    path = tmp_path / "spool.sqlite3"
    if damage == "garbage":
        path.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        make_valid_spool(path, 400)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.mkdir()
    original = path.read_bytes() if path.is_file() else None

    with Spool(path, max_events=100) as spool:
        health = spool.health()
        assert health.fault is None
        kept = Path(health.moved_aside)
        assert kept.parent == tmp_path and kept.name.startswith("spool.sqlite3.corrupt-")
        if original is not None:
            assert kept.read_bytes() == original  # kept for inspection, byte for byte
        else:
            assert kept.is_dir()
        spool.append("t/a", b"1")
        spool.append("t/b", b"2")
        assert [m.payload for m in spool.after(0, 10)] == [b"1", b"2"]
    assert rows(path) == [("t/a", b"1"), ("t/b", b"2")]  # the fresh file holds them


def test_a_spool_path_that_is_a_directory_holding_files_is_never_moved(tmp_path: Path):
    path = tmp_path / "state"  # e.g. spool.path set to the state dir by mistake
    path.mkdir()
    (path / "snapshot.jpg").write_bytes(b"kept")
    with Spool(path, max_events=100) as spool:
        assert "a directory that holds files" in spool.health().fault
        spool.append("t", b"1")
        assert [m.payload for m in spool.after(0, 10)] == [b"1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert (path / "snapshot.jpg").read_bytes() == b"kept"


def test_a_spool_path_that_is_a_device_is_never_moved_and_events_stay_in_memory():
    with Spool(Path("/dev/null"), max_events=100) as spool:
        assert "not a regular file" in spool.health().fault
        seqs = [spool.append("t", str(i).encode()) for i in range(3)]
        assert [m.payload for m in spool.after(0, 10)] == [b"0", b"1", b"2"]
        assert spool.health().unpersisted == 3 and spool.depth == 3
        spool.remove_many(seqs[:2])
        assert spool.depth == 1 and spool.unpersisted == 1
    assert Path("/dev/null").is_char_device()


def test_read_only_state_dir_keeps_a_bounded_spool_in_memory(make_tmpfs):
    fs = make_tmpfs("1m")
    fs.read_only()
    with Spool(fs.path / "state" / "spool.sqlite3", max_events=10) as spool:
        assert "Read-only file system" in spool.health().fault
        for i in range(25):
            spool.append("t", str(i).encode())
        health = spool.health()
        assert (health.depth, health.dropped, health.unpersisted) == (10, 15, 10)
        assert [m.payload for m in spool.after(0, 100)] == [str(i).encode() for i in range(15, 25)]


def test_read_only_spool_recovers_when_the_disk_becomes_writable(make_tmpfs):
    fs = make_tmpfs("1m")
    fs.read_only()
    clock = FakeClock()
    path = fs.path / "spool.sqlite3"
    with Spool(path, max_events=100, retry_s=5.0, clock=clock) as spool:
        first = spool.append("t", b"early")
        fs.read_only(False)
        assert spool.health().fault is not None  # not retried before retry_s
        clock.now += 5.0
        spool.append("t", b"late")
        health = spool.health()
        assert (health.fault, health.unpersisted, health.depth) == (None, 0, 2)
        assert spool.after(first - 1, 1)[0].payload == b"early"
    assert rows(path) == [("t", b"early"), ("t", b"late")]


def test_disk_full_at_run_time_keeps_events_in_memory_then_writes_them_in_order(make_tmpfs):
    fs = make_tmpfs("1m")
    clock = FakeClock()
    path = fs.path / "spool.sqlite3"
    spool = Spool(path, max_events=10_000, retry_s=5.0, clock=clock)
    spool.append("t", b"0")
    filler = fs.fill()
    payloads = [b"0"]
    for i in range(1, 400):  # the WAL's spare pages take a few; then the disk is full
        payloads.append(str(i).encode() * 50)
        spool.append("t", payloads[-1])
    health = spool.health()
    assert "database or disk is full" in health.fault
    assert health.unpersisted > 0 and health.depth == 400
    assert [m.payload for m in spool.after(0, 1000)] == payloads  # still all sent, in order
    acked = [m.seq for m in spool.after(0, 1000)][-5:]
    spool.remove_many(acked)  # acknowledged from memory while the disk is full
    assert spool.depth == 395

    filler.unlink()
    clock.now += 5.0
    health = spool.health()
    assert (health.fault, health.unpersisted, health.depth) == (None, 0, 395)
    spool.close()
    assert [p for _, p in rows(path)] == payloads[:-5]  # on disk now, in the original order
    assert not list(fs.path.glob("*.corrupt-*"))


def test_sequence_numbers_continue_after_memory_when_the_disk_returns(make_tmpfs):
    fs = make_tmpfs("1m")
    clock = FakeClock()
    spool = Spool(fs.path / "spool.sqlite3", max_events=10_000, retry_s=1.0, clock=clock)
    filler = fs.fill()
    seqs = [spool.append("t", b"x" * 2000) for _ in range(50)]
    filler.unlink()
    clock.now += 1.0
    seqs.append(spool.append("t", b"y"))
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [m.seq for m in spool.after(0, 100)] == seqs
    spool.close()
    with Spool(fs.path / "spool.sqlite3", max_events=10_000) as again:
        assert again.append("t", b"z") > seqs[-1]


def test_a_write_fault_clears_only_when_the_disk_takes_a_write_again(make_tmpfs):
    fs = make_tmpfs("1m")
    clock = FakeClock()
    spool = Spool(fs.path / "spool.sqlite3", max_events=10_000, retry_s=5.0, clock=clock)
    filler = fs.fill()
    seqs = [spool.append("t", b"x" * 2000) for _ in range(200)]
    assert spool.health().fault is not None
    spool.remove_many(seqs)  # every event acknowledged: nothing left in memory
    assert spool.health().unpersisted == 0
    clock.now += 5.0
    assert "database or disk is full" in spool.health().fault  # the disk is still full
    filler.unlink()
    clock.now += 5.0
    assert spool.health().fault is None
    spool.close()
