"""The console's review folder on a real 20 MB state dir: "this verdict is wrong" kept as fast as
a client can ask stops at the folder's bytes, the disk's free space and the rate, says why, and
leaves room for snapshots and the MQTT spool; it only ever deletes items it wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from console_helpers import request, running_console

from pi_inspect.edge.console.actions import Actions
from pi_inspect.edge.console.live import LiveView
from pi_inspect.edge.console.output import ConsoleOutput
from pi_inspect.edge.console.review import ITEM_ID, ReviewStore
from pi_inspect.edge.mqtt.spool import Spool
from pi_inspect.edge.outputs import LiveFrame
from pi_inspect.edge.snapshots import SnapshotStore

STATE = "20m"  # the state dir's size (a small SD card partition, as on the line)


def live_frame() -> LiveFrame:
    """An inspected live frame JPEG cannot compress much (about 100 kB kept at quality 95)."""
    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return LiveFrame(image, 1, time.time(), {"good": 0.1, "error": 0.9})


def keep(base: str) -> tuple[int, dict]:
    """The page's "this verdict is wrong" on the live frame."""
    headers = {"X-Pi-Inspect": "1", "Content-Type": "application/json"}
    status, _, body = request(f"{base}/api/review", data={}, headers=headers, method="POST")
    return status, json.loads(body)


def items_bytes(review_dir: Path) -> int:
    return sum(f.stat().st_size for d in review_dir.iterdir() if d.is_dir() for f in d.iterdir())


def leftovers(review_dir: Path) -> list[str]:
    return [p.name for p in review_dir.iterdir() if p.name.startswith(".")]


def assert_snapshots_and_spool_still_write(state_dir: Path) -> None:
    """A snapshot and a spooled event, in the same filesystem, after the review folder stopped."""
    store = SnapshotStore(state_dir / "snapshots", min_free_bytes=0)
    frame = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert store.save(frame, None, {"n": 1}, tag="error") is not None
    assert store.health().faults["snapshots"] is None
    with Spool(state_dir / "spool.sqlite3", max_events=1000) as spool:
        for i in range(50):
            spool.append("line-3/event", b"x" * 2000 + str(i).encode())
        health = spool.health()
        assert health.fault is None and health.unpersisted == 0 and health.depth == 50


def test_wrong_verdicts_kept_as_fast_as_possible_stay_within_review_max_bytes(make_tmpfs):
    fs = make_tmpfs(STATE)
    limit = 3_000_000
    bounds = dict(review_max_bytes=limit, review_min_free_bytes=0, review_max_per_minute=600)
    with running_console(fs.path, **bounds) as (output, server):
        output.frame_tap.offer_frame(live_frame())
        review_dir = fs.path / "review"
        for _ in range(250):  # about 25 MB of items: more than the whole disk
            status, reply = keep(server.url)
            assert status == 200 and reply["ok"], reply
            assert items_bytes(review_dir) <= limit  # the oldest went to make room
        kept = [p for p in review_dir.iterdir() if ITEM_ID.fullmatch(p.name)]
        assert 10 < len(kept) < 40 and leftovers(review_dir) == []
        assert fs.free_bytes() > 15_000_000
        assert_snapshots_and_spool_still_write(fs.path)


def test_wrong_verdicts_kept_as_fast_as_possible_are_refused_at_review_min_free_bytes(
    make_tmpfs,
):
    fs = make_tmpfs(STATE)
    keep_free = 8_000_000
    bounds = dict(
        review_max_bytes=10**9, review_min_free_bytes=keep_free, review_max_per_minute=600
    )
    with running_console(fs.path, **bounds) as (output, server):
        output.frame_tap.offer_frame(live_frame())
        replies = [keep(server.url) for _ in range(250)]  # more than the disk holds
        refused = [i for i, (status, _) in enumerate(replies) if status != 200]
        assert 50 < refused[0] < 150 and refused == list(range(refused[0], 250))
        status, reply = replies[-1]
        assert status == 409 and reply["ok"] is False and reply["error"].startswith("not kept: ")
        assert "free" in reply["error"] and "console.review_min_free_bytes" in reply["error"]
        assert fs.free_bytes() >= keep_free and leftovers(fs.path / "review") == []
        assert_snapshots_and_spool_still_write(fs.path)  # the room kept is theirs


def test_more_than_review_max_per_minute_are_refused_with_the_wait_until_the_minute_passes(
    make_tmpfs,
):
    fs = make_tmpfs(STATE)
    now = [1_800_000_000.0]
    review = ReviewStore(
        fs.path / "review", max_per_minute=10, min_free_bytes=0, clock=lambda: now[0]
    )
    console = ConsoleOutput(LiveView(5.0), events_kept=10)
    console.frame_tap.offer_frame(live_frame())
    actions = Actions(console, review, None)
    replies = [actions.keep_for_review(b"{}") for _ in range(50)]
    assert [r["ok"] for r in replies] == [True] * 10 + [False] * 40
    assert len(review.ids()) == 10
    assert replies[-1]["error"] == (
        "not kept: at most 10 review items a minute (console.review_max_per_minute); "
        "try again in 60 s"
    )
    now[0] += 45.0
    assert actions.keep_for_review(b"{}")["error"].endswith("try again in 15 s")
    now[0] += 15.0  # a minute after the first ten
    assert [actions.keep_for_review(b"{}")["ok"] for _ in range(11)] == [True] * 10 + [False]
    assert len(review.ids()) == 20 and leftovers(review.directory) == []


def test_the_console_refuses_keeping_beyond_its_rate_and_says_why(make_tmpfs):
    fs = make_tmpfs(STATE)
    with running_console(fs.path, review_max_per_minute=5, review_min_free_bytes=0) as (o, s):
        o.frame_tap.offer_frame(live_frame())
        replies = [keep(s.url) for _ in range(20)]
    assert [status for status, _ in replies] == [200] * 5 + [409] * 15
    assert "console.review_max_per_minute" in replies[-1][1]["error"]
    assert len(list((fs.path / "review").iterdir())) == 5


FOREIGN_FILES = ("app.json", "policy.json", "logo.jpg", "manifest.json", "20260101-000000-00001")


def test_review_pruning_at_start_and_while_running_deletes_only_items_it_wrote(tmp_path: Path):
    state = tmp_path / "state"
    review_dir = state / "review"
    old = ReviewStore(review_dir, min_free_bytes=0)
    old_ids = [old.add(b"\xff\xd8old", b"\xff\xd8heat", {"n": i}) for i in range(3)]
    (review_dir / old_ids[0] / "notes.txt").write_text("someone's notes, in an item's folder")
    written = {}
    for name in FOREIGN_FILES:  # the last one: a file named like an item
        written[name] = f"not the console's: {name}".encode()
        (review_dir / name).write_bytes(written[name])
    for folder, name in (
        ("20260101-000000-1", "item.json"),  # an item's files, not the item pattern
        ("20260101-000000-00002", "notes.txt"),  # the item pattern, but no item of ours
        (".20260101-000000-00003.tmp", "notes.txt"),  # a temporary's name, something else in it
    ):
        (review_dir / folder).mkdir()
        (review_dir / folder / name).write_text("not the console's")
    crash = review_dir / ".20260101-000000-00004.tmp"  # half an item a crash left behind
    crash.mkdir()
    (crash / "frame.jpg").write_bytes(b"\xff\xd8half")

    with running_console(state, review_max_count=1, review_min_free_bytes=0) as (output, server):
        assert output is not None
        assert ReviewStore(review_dir).ids() == old_ids[-1:]  # the start applied max_count
        assert not crash.exists()
        output.frame_tap.offer_frame(live_frame())
        new = [keep(server.url)[1]["id"] for _ in range(4)]
        assert ReviewStore(review_dir).ids() == new[-1:]

    for name, data in written.items():
        assert (review_dir / name).read_bytes() == data
    for folder, name in (
        ("20260101-000000-1", "item.json"),
        ("20260101-000000-00002", "notes.txt"),
        (".20260101-000000-00003.tmp", "notes.txt"),
        (old_ids[0], "notes.txt"),  # the item's own files went, the notes stayed
    ):
        assert (review_dir / folder / name).read_text().startswith(("not the", "someone"))
    assert sorted(p.name for p in (review_dir / old_ids[0]).iterdir()) == ["notes.txt"]
