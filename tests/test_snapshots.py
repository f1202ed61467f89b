"""The snapshot store on real (small, full, read-only) filesystems: it stops cleanly, leaves no
temporary or half-written snapshot, keeps ``min_free_bytes`` free and says why it stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon.app import open_snapshots
from pi_inspect.edge.snapshots import STEM, SUFFIXES, SnapshotStore


def noise(seed: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A frame JPEG cannot compress much (about 60 kB at quality 85)."""
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


HEAT = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)


def save(store: SnapshotStore, seed: int):
    return store.save(noise(seed), HEAT, {"seed": seed}, tag="error")


def fault(store: SnapshotStore) -> str | None:
    return store.health().faults["snapshots"]


def temporary_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(".")]


def incomplete_snapshots(directory: Path) -> list[str]:
    """Stems that lack one of their three files."""
    stems: dict[str, set[str]] = {}
    for p in directory.iterdir():
        for suffix in SUFFIXES[::-1]:
            if p.name.endswith(suffix) and not p.name.startswith("."):
                stems.setdefault(p.name[: -len(suffix)], set()).add(suffix)
                break
    return [stem for stem, have in stems.items() if have != set(SUFFIXES)]


def test_a_full_disk_stops_snapshots_cleanly_and_they_resume_when_space_returns(make_tmpfs):
    fs = make_tmpfs("1m")
    store = SnapshotStore(fs.path / "snapshots", min_free_bytes=0, max_bytes=10**9)
    results = [save(store, i) for i in range(40)]
    assert results[0] is not None and results[-1] is None
    health = store.health()
    assert health.faults["snapshots"].startswith("snapshots stopped: disk full")
    assert (
        health.stats["snapshots_saved"] == sum(r is not None for r in results)
        and health.stats["snapshots_skipped"] > 0
    )
    assert temporary_files(store.directory) == []
    assert incomplete_snapshots(store.directory) == []

    oldest = sorted(store.directory.glob("*.json"))[:3]
    for sidecar in oldest:  # an operator makes room
        for suffix in SUFFIXES:
            Path(str(sidecar)[: -len(".json")] + suffix).unlink()
    assert fault(store) is None
    assert save(store, 99) is not None


def test_a_write_that_fails_mid_snapshot_removes_what_it_wrote_and_its_temporary_file(
    make_tmpfs,
):
    # Inodes run out while the second of three files is written: ENOSPC with bytes to spare.
    fs = make_tmpfs("2m", options="nr_inodes=6")
    store = SnapshotStore(fs.path / "snapshots", min_free_bytes=0)
    assert save(store, 0) is not None
    assert save(store, 1) is None
    assert "No space left on device" in fault(store)
    assert temporary_files(store.directory) == []
    assert incomplete_snapshots(store.directory) == []
    assert len(list(store.directory.iterdir())) == 3  # the first snapshot, whole


def test_retention_keeps_min_free_bytes_free_and_pauses_when_other_files_take_it(make_tmpfs):
    fs = make_tmpfs("2m")
    keep = 700_000
    store = SnapshotStore(fs.path / "snapshots", min_free_bytes=keep, max_bytes=10**9)
    for i in range(30):
        assert save(store, i) is not None  # the oldest go to make room
        assert fs.free_bytes() >= keep
    assert fault(store) is None
    before = frames(store.directory)
    filler = fs.fill()  # something else fills the disk: the oldest snapshots yield to the new one
    newest = save(store, 100)
    assert newest is not None and fs.free_bytes() >= keep
    after = frames(store.directory)
    assert after[-1] == newest.name and after[:-1] == before[len(before) - len(after) + 1 :]
    more = fs.fill("more")  # and again: not enough snapshots left to make room, so they pause
    assert save(store, 101) is None
    assert fault(store).startswith("snapshots paused:")
    assert frames(store.directory) == [] and temporary_files(store.directory) == []
    filler.unlink()
    more.unlink()
    assert fault(store) is None
    assert save(store, 102) is not None


def test_a_read_only_disk_stops_snapshots_until_it_is_writable(make_tmpfs):
    fs = make_tmpfs("2m")
    store = SnapshotStore(fs.path / "snapshots", min_free_bytes=0)
    assert save(store, 0) is not None
    fs.read_only()
    assert save(store, 1) is None
    assert "Read-only file system" in fault(store)
    store.prune()  # never raises on a read-only disk either
    fs.read_only(False)
    assert fault(store) is None
    assert save(store, 2) is not None
    assert store.health().stats == {"snapshots_saved": 2, "snapshots_skipped": 1}


def test_temporary_files_left_by_a_crash_are_removed_at_start(tmp_path: Path):
    directory = tmp_path / "snapshots"
    directory.mkdir()
    (directory / ".20260101-000000-00001-error.jpg.tmp").write_bytes(b"half")
    (directory / ".20260101-000000-00001-error.json.tmp").write_bytes(b"{")
    (directory / ".keep-me").write_text("not ours")
    store = SnapshotStore(directory, min_free_bytes=0)
    store.prune()
    assert sorted(p.name for p in directory.iterdir()) == [".keep-me"]


def test_count_and_age_limits_remove_the_oldest_snapshots(tmp_path: Path):
    now = [time.time()]  # file times are real: the store's clock starts at the real time
    store = SnapshotStore(
        tmp_path / "s", max_count=3, max_age_s=100.0, min_free_bytes=0, clock=lambda: now[0]
    )
    names = [save(store, i).name for i in range(5)]
    assert frames(store.directory) == sorted(names[-3:])
    now[0] += 200.0  # the three left are now older than max_age_s
    newest = save(store, 9).name
    assert frames(store.directory) == [newest]


def frames(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jpg") if not p.name.endswith(".heat.jpg"))


# A folder shared with other things: every name here is one the store never writes.
FOREIGN = (
    "app.json",
    "policy.json",
    "logo.jpg",
    "manifest.json",
    "20260101-000000-1-error.jpg",  # a snapshot's name, but not the store's exact pattern
    "20260101-000000-00001-error.png",
    "20260101-000000-00001-error.jpg.bak",
    "x20260101-000000-00001-error.json",
    ".app.json.tmp",
)


def put_foreign(directory: Path, age_s: float = 0.0) -> dict[str, bytes]:
    """Write the foreign files (``age_s`` old) and one foreign folder named like a snapshot."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(FOREIGN):
        data = f"{name} {i}".encode() * 2000
        (directory / name).write_bytes(data)
        written[name] = data
        then = time.time() - age_s
        os.utime(directory / name, (then, then))
    (directory / "20260101-000000-00002-error.jpg").mkdir()  # a folder, not a snapshot file
    return written


def assert_foreign_intact(directory: Path, written: dict[str, bytes]) -> None:
    for name, data in written.items():
        assert (directory / name).read_bytes() == data, name
    assert (directory / "20260101-000000-00002-error.jpg").is_dir()


def test_start_up_pruning_deletes_only_snapshots_and_leaves_other_files_in_snapshots_dir(
    tmp_path: Path,
):
    directory = tmp_path / "shared"
    written = put_foreign(directory, age_s=10 * 86400.0)  # older than max_age_s, many bytes
    old = SnapshotStore(directory, min_free_bytes=0)
    names = [save(old, i).name for i in range(3)]
    for p in directory.iterdir():  # the snapshots are as old as the foreign files
        if any(p.name.startswith(n[: -len(".jpg")]) for n in names):
            then = time.time() - 10 * 86400.0
            os.utime(p, (then, then))
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "snapshots": {
                "dir": str(directory),
                "max_count": 1,
                "max_bytes": 10_000,
                "max_age_s": 3600.0,
                "min_free_bytes": 10**15,
            },
        }
    )
    open_snapshots(config)  # the daemon's start: construct, then prune
    assert own_frames(directory) == []  # every snapshot was over the limits
    assert_foreign_intact(directory, written)


def test_retention_while_running_neither_counts_nor_deletes_files_it_did_not_write(
    tmp_path: Path,
):
    directory = tmp_path / "bundle"  # e.g. pointed at a model bundle folder
    written = put_foreign(directory, age_s=10 * 86400.0)
    (directory / "big.jpg").write_bytes(b"\0" * 2_000_000)  # far over max_bytes on its own
    written["big.jpg"] = (directory / "big.jpg").read_bytes()
    one = len(save(SnapshotStore(tmp_path / "probe", min_free_bytes=0), 0).jpeg) * 3
    store = SnapshotStore(directory, max_count=3, max_bytes=one * 5, min_free_bytes=0)
    for i in range(8):
        assert save(store, i) is not None
        assert len(own_frames(directory)) == min(i + 1, 3)  # foreign files and bytes count 0
    assert_foreign_intact(directory, written)
    huge = SnapshotStore(directory, min_free_bytes=10**15)  # deletes all it may, then pauses
    assert save(huge, 9) is None and fault(huge).startswith("snapshots paused:")
    assert own_frames(directory) == []
    assert_foreign_intact(directory, written)


def own_frames(directory: Path) -> list[str]:
    """The store's frame JPEGs (a name of its exact pattern), not the foreign files beside them."""
    return [
        name
        for name in frames(directory)
        if STEM.fullmatch(name[: -len(".jpg")]) and (directory / name).is_file()
    ]
