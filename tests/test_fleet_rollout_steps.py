"""The rollout's steps against stations that answer at once (no broker, a fake clock): what it
publishes to whom, the record it keeps, and how resume and abort take up a record."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from pi_inspect.edge.fleet.rollout import (
    Bundle,
    Gates,
    InvalidRecord,
    Plan,
    Rollout,
    parse_record,
    plan_of,
)

SHA = "ab" * 32
GATES = Gates(soak_s=2.0, min_frames=10, apply_timeout_s=5.0, poll_s=0.5)


@dataclass
class View:
    report: dict[str, Any] = field(default_factory=dict)


class Fleet:
    """Stations that apply each desired state on the next poll; ``refuse`` names those whose
    golden set fails; ``loud`` those whose candidate alarms on everything."""

    def __init__(self, names, refuse=(), loud=()) -> None:
        self.views = {n: View() for n in names}
        self.refuse, self.loud = set(refuse), set(loud)
        self.sent: list[tuple[str, str]] = []  # (station, mode)
        self.records: list[dict] = []
        self.now = 0.0

    def publish(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        if topic.endswith("/rollout"):
            self.records.append(data)
            return
        station = topic.split("/")[1]
        self.sent.append((station, data["mode"]))
        failed = data["mode"] == "shadow" and station in self.refuse
        report = self.views[station].report
        report["desired"] = {"rollout": data["rollout"], "mode": data["mode"],
                             "state": "failed" if failed else "applied",
                             "reason": "golden set failed" if failed else None,
                             "at": len(self.sent)}  # fmt: skip
        if data["mode"] == "shadow" and not failed:
            rate = 0.9 if station in self.loud else 0.02
            report["shadow"] = {"identity": SHA, "frames": 50, "agreement": 0.99,
                                "candidate_alarm_rate": rate, "service_alarm_rate": 0.02}  # fmt: skip
        elif data["mode"] in ("promote", "rollback"):
            report.pop("shadow", None)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def rollout(self, plan: Plan, connected=lambda: True) -> Rollout:
        return Rollout(plan, prefix="p", publish=self.publish, views=lambda: self.views,
                       clock=lambda: self.now, sleep=self.sleep, wall=lambda: 1000 + self.now,
                       connected=connected)  # fmt: skip


def plan(names=("a", "b", "c", "d"), rings="1,50%,100%") -> Plan:
    return Plan.make("r-1", Bundle("seam", SHA, "http://ws/x.tar"), names, rings, GATES)


def test_each_ring_goes_to_shadow_then_promotion_and_the_record_follows():
    fleet = Fleet("abcd")
    rollout = fleet.rollout(plan())
    assert rollout.run()
    assert fleet.sent == [("a", "shadow"), ("a", "promote"), ("b", "shadow"), ("b", "promote"),
                          ("c", "shadow"), ("d", "shadow"), ("c", "promote"), ("d", "promote")]  # fmt: skip
    last = parse_record(fleet.records[-1])
    assert (last["state"], last["ring"], last["done"]) == ("done", 3, 4)
    assert last["log"][-1]["line"] == "rolled out to 4 stations"
    assert plan_of(last) == rollout.plan  # the record holds the whole plan


def test_a_gate_failure_rolls_the_ring_back_and_never_touches_later_rings():
    fleet = Fleet("abcd", loud="b")
    rollout = fleet.rollout(plan())
    assert not rollout.run()
    assert ("b", "rollback") in fleet.sent and ("a", "rollback") not in fleet.sent
    assert not {s for s, _ in fleet.sent} & {"c", "d"}
    assert rollout.state == "failed" and "b: the candidate alarms on 90.0%" in rollout.reason


def test_resume_skips_done_rings_and_steps_a_station_already_took():
    fleet = Fleet("abcd")
    first = fleet.rollout(plan())
    first.interrupt()  # ring 1 publishes shadow, the station applies it, the soak stops
    assert not first.run() and first.state == "interrupted"
    assert fleet.sent == [("a", "shadow")]
    record = fleet.records[-1]
    assert (record["state"], record["ring"], record["step"]) == ("interrupted", 1, "soak")

    fleet.sent.clear()
    again = fleet.rollout(plan_of(record, "http://ws:9/x.tar"))
    assert again.resume(record)
    assert fleet.sent[0] == ("a", "promote")  # its shadow was applied: not asked again
    assert ("a", "shadow") not in fleet.sent and again.done == 4


def test_abort_rolls_back_every_station_the_rollout_touched():
    fleet = Fleet("abcd")
    done = fleet.rollout(plan(rings="1,50%"))  # two rings of four stations: c, d untouched
    done.run()
    fleet.sent.clear()
    aborted = fleet.rollout(plan(rings="1,50%"))
    assert aborted.abort(fleet.records[-1])
    assert fleet.sent == [("a", "rollback"), ("b", "rollback")]
    assert fleet.records[-1]["state"] == "aborted"


def test_an_abort_no_station_confirms_is_said_and_still_recorded():
    fleet = Fleet("ab")
    fleet.publish = lambda topic, payload: (
        fleet.records.append(json.loads(payload)) if topic.endswith("/rollout") else None
    )  # the stations never answer
    rollout = fleet.rollout(plan(("a", "b"), "100%"))
    assert not rollout.abort({"ring": 1, "done": 0, "log": []})
    assert fleet.records[-1]["state"] == "aborted"
    assert "not every station confirmed" in fleet.records[-1]["reason"]


@pytest.mark.parametrize(
    "broken",
    [
        {"schema": 2},
        {"schema": 1, "id": "r", "state": "running"},
        {"schema": 1, "id": "r", "bundle": {"name": "s", "sha256": SHA, "url": "u"},
         "stations": ["a"], "sizes": [2], "gates": {}, "state": "running", "ring": 1, "done": 0},
        {"schema": 1, "id": "r", "bundle": {"name": "s", "sha256": SHA, "url": "u"},
         "stations": ["a"], "sizes": [1], "gates": {}, "state": "odd", "ring": 1, "done": 0},
        {"schema": 1, "id": "r", "bundle": {"name": "s", "sha256": SHA, "url": "u"},
         "stations": ["a"], "sizes": [1], "gates": {}, "state": "running", "ring": 1,
         "done": "0"},
        {"schema": 1, "id": "r", "bundle": {"name": "s", "sha256": SHA, "url": "u"},
         "stations": ["a"], "sizes": [1], "gates": {}, "state": "interrupted", "ring": 1,
         "done": 1},
    ],
)  # fmt: skip
def test_a_record_that_does_not_describe_a_rollout_is_refused(broken):
    with pytest.raises(InvalidRecord):
        parse_record(broken)


def test_a_failure_reported_before_a_station_was_asked_again_is_not_its_answer():
    fleet = Fleet("ab", refuse="a")  # a's fetch failed before the workstation was interrupted
    fleet.publish("p/a/desired", json.dumps({"rollout": "r-1", "mode": "shadow"}).encode())
    fleet.refuse.clear()  # the server is back: asked again, a applies it, a few polls later
    record = {**fleet.rollout(plan(("a", "b"), "100%")).record(), "state": "interrupted"}
    real, held = fleet.publish, []

    def publish(topic: str, payload: bytes) -> None:
        if topic == "p/a/desired" and not held:
            held.append(payload)  # a answers on the third poll; until then it says "failed"
        else:
            real(topic, payload)

    def sleep(seconds: float) -> None:
        fleet.sleep(seconds)
        if fleet.now >= 1.5 and held and held[0] is not None:
            real("p/a/desired", held[0])
            held[0] = None

    fleet.publish = publish
    again = Rollout(plan_of(record), prefix="p", publish=publish, views=lambda: fleet.views,
                    clock=lambda: fleet.now, sleep=sleep)  # fmt: skip
    assert again.resume(record), again.log
    assert again.state == "done"


def test_a_broker_away_longer_than_the_grace_interrupts_and_a_short_one_only_waits():
    from pi_inspect.edge.fleet.rollout import BROKER_GRACE_S

    fleet = Fleet("ab")

    def connected(away: float) -> bool:  # the broker is away from 1 s on, for ``away`` s
        return not 1.0 <= fleet.now < 1.0 + away

    short = fleet.rollout(plan(("a", "b"), "100%"), connected=lambda: connected(10.0))
    assert short.run() and any(line == "broker back" for line in short.log)
    fleet = Fleet("ab")
    long = fleet.rollout(plan(("a", "b"), "100%"), connected=lambda: connected(BROKER_GRACE_S + 60))
    assert not long.run()
    assert long.state == "interrupted" and "broker away for more than" in long.reason


def test_an_interrupted_rollback_waits_for_the_stations_unless_interrupted_twice():
    fleet = Fleet("ab")
    fleet.publish = lambda topic, payload: (
        fleet.records.append(json.loads(payload)) if topic.endswith("/rollout") else None
    )  # the stations never answer
    polls = []

    def sleep(seconds: float) -> None:
        fleet.now += seconds
        polls.append(seconds)
        if len(polls) == 2:
            rollout.interrupt()  # once: the rollback goes on waiting
        if len(polls) == 4:
            rollout.interrupt()  # twice: it stops waiting

    rollout = Rollout(plan(("a", "b"), "100%"), prefix="p", publish=fleet.publish,
                      views=lambda: fleet.views, clock=lambda: fleet.now, sleep=sleep)  # fmt: skip
    assert not rollout.abort({"ring": 1, "done": 0, "log": []})
    assert len(polls) == 4 and fleet.records[-1]["state"] == "aborted"
    assert any("stopped waiting for the rollback" in line for line in rollout.log)


def test_a_broker_lost_while_rolling_back_leaves_a_failed_record_not_a_traceback():
    fleet = Fleet("abcd", loud="a")
    real = fleet.publish

    def publish(topic: str, payload: bytes) -> None:
        if json.loads(payload).get("mode") == "rollback":
            raise ConnectionError("broker 127.0.0.1:1883 did not take it")
        real(topic, payload)

    fleet.publish = publish
    rollout = fleet.rollout(plan())
    assert not rollout.run()
    assert fleet.records[-1]["state"] == "failed"  # not resumable past the failed gate
    assert any("rollback not sent" in line for line in rollout.log)
