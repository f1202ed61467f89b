"""A spool damaged while the daemon runs: random bytes over the live file, found first by the
write path or by the read path. Every event appended after the damage reaches the subscriber;
what the damage left readable is kept; the file is set aside and the fault ends."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from test_mqtt_output import config_for, make_event, make_output

from pi_inspect.edge.mqtt.spool import Spool

BEFORE, AFTER = 329, 450


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def damage(path: Path, seed: int = 0) -> None:
    """Random bytes over the headers of pages in the first half of the live file (SQLite's
    own header on page 1 and the newest pages kept)."""
    pages = path.stat().st_size // 4096
    rng = random.Random(seed)
    with path.open("r+b") as fh:
        for page in rng.sample(range(1, max(2, pages // 2)), k=min(6, max(1, pages // 2 - 1))):
            fh.seek(page * 4096)
            fh.write(os.urandom(64))


def drain(spool: Spool) -> list[bytes]:
    out, cursor = [], 0
    while batch := spool.after(cursor, 100):
        out += [m.payload for m in batch]
        cursor = batch[-1].seq
        spool.remove_many(m.seq for m in batch)
    return out


def fill(spool: Spool, first: int, count: int) -> None:
    for i in range(first, first + count):
        spool.append("t", f"event {i}".encode() + b"." * 400)


@pytest.mark.parametrize("found_by", ["write", "read"])
def test_events_appended_after_run_time_damage_are_all_delivered(tmp_path, found_by):
    path = tmp_path / "spool.sqlite3"
    clock = FakeClock()
    spool = Spool(path, max_events=10_000, clock=clock)
    fill(spool, 0, BEFORE)
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the rows are in the main file now
    damage(path)
    spool._db.execute("PRAGMA shrink_memory")  # its page cache goes, as a long run's would
    if found_by == "read":
        spool.after(0, 10)  # the sender reads first
    fill(spool, BEFORE, AFTER)
    clock.now += 5.0  # retry_s: the fresh file is made now, one per retry while the card fails
    delivered = drain(spool)
    health = spool.health()
    after_damage = {f"event {i}".encode() for i in range(BEFORE, BEFORE + AFTER)}
    assert after_damage <= {p.split(b".")[0] for p in delivered}
    assert len(delivered) == len(set(delivered))  # each once
    assert health.moved_aside is not None and Path(health.moved_aside).exists()
    assert spool.health().fault is None and spool.depth == 0
    spool.close()
    assert Spool(path, max_events=10).depth == 0  # the fresh file is a sound spool


def test_a_damaged_spool_loses_nothing_printed_after_the_damage_through_a_broker_outage(
    make_mosquitto, mqtt_subscribe, tmp_path
):
    broker = make_mosquitto(persistence=True)  # the subscriber's session survives the restart
    sub = mqtt_subscribe(broker, ["pi-inspect/line1/defect/#"], client_id="plc", clean_session=False)
    out = make_output(config_for(broker), tmp_path)
    try:
        broker.stop()
        for i in range(BEFORE):
            out.publish_event(make_event(i))
        spool_path = tmp_path / "spool.sqlite3"
        out._spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        damage(spool_path, seed=1)
        out._spool._db.execute("PRAGMA shrink_memory")
        for i in range(BEFORE, BEFORE + AFTER):
            out.publish_event(make_event(i))
        broker.start()
        wanted = {make_event(i).event_id for i in range(BEFORE, BEFORE + AFTER)}
        deadline = time.monotonic() + 30
        got: set[str] = set()
        while time.monotonic() < deadline:
            got = {json.loads(p)["event_id"] for _, p, _ in list(sub.messages) if p}
            if wanted <= got:
                break
            time.sleep(0.2)
        assert wanted <= got, f"{len(wanted - got)} events printed after the damage were lost"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (out.health().faults.get("spool") or out.spool_depth):
            time.sleep(0.2)
        assert out.spool_depth == 0 and not out.health().faults.get("spool")
    finally:
        out.close()
