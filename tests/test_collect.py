"""Samples for the next model: frames kept near a threshold or at random within quotas, an
operator's flag with the right labels, and ``pull`` into a data set that ``train`` reads."""

from __future__ import annotations

import csv
import json
import random
import threading
from pathlib import Path

from daemon_helpers import OK_BGR, FlakySource, RecordingOutput, script, wait_until, write_video

from pi_inspect.edge.collect import CollectConfig, Collector
from pi_inspect.edge.config import parse_config
from pi_inspect.edge.data.table import read_rows
from pi_inspect.edge.decide import Rule
from pi_inspect.edge.outputs import Command
from pi_inspect.edge.pull import pull

RULES = {"error": Rule(0.5, "above", "error", None), "good": Rule(0.5, "below", "good", None)}
NEAR_BGR = (255, 0, 110)  # red 110/255 = 0.43: the error score 0.07 under its threshold


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def collector(clock: Clock, **rules) -> Collector:
    return Collector(CollectConfig.model_validate(rules), clock=clock, rng=random.Random(0))


def test_frames_near_a_threshold_are_kept_within_the_minute_hour_and_day_quotas():
    clock = Clock()
    c = collector(clock, near={"enabled": True, "band": 0.1, "per_minute": 2, "per_hour": 3, "per_day": 4})
    near, far = {"error": 0.45, "good": 0.9}, {"error": 0.1, "good": 0.95}
    assert c.decide(far, RULES) is None
    kept = [c.decide(near, RULES) for _ in range(5)]
    assert [k.reason if k else None for k in kept] == ["near", "near", None, None, None]
    assert kept[0].thresholds == {"error": 0.5, "good": 0.5}
    clock.now += 60  # a new minute: one more fits the hour's 3
    assert [bool(c.decide(near, RULES)) for _ in range(2)] == [True, False]
    clock.now += 3600  # a new hour: one more fits the day's 4
    assert [bool(c.decide(near, RULES)) for _ in range(2)] == [True, False]
    clock.now += 86400  # a new day
    assert c.decide(near, RULES) is not None


def test_a_random_share_of_ordinary_frames_is_kept_and_a_zero_quota_keeps_none():
    clock = Clock()
    c = collector(clock, random={"enabled": True, "share": 0.1, "per_minute": 600, "per_hour": 36000, "per_day": 100000})
    kept = 0
    for _ in range(2000):
        clock.now += 1.0
        kept += c.decide({"error": 0.0}, RULES) is not None
    assert 120 < kept < 280  # 10 % of 2000, seeded
    none = collector(clock, random={"enabled": True, "share": 1.0, "per_minute": 0})
    assert all(none.decide({"error": 0.0}, RULES) is None for _ in range(10))
    assert not collector(clock).enabled  # off unless a rule is switched on


def config(tmp_path: Path, uri: str, **sections):
    return parse_config({
        "source": {"uri": uri},
        "snapshots": {"dir": str(tmp_path / "snaps")},
        "output": {"stats_interval_s": 0.05},
        **sections,
    })


def test_the_station_keeps_near_threshold_frames_and_pull_moves_them_into_a_data_set(
    tmp_path: Path, make_daemon
):
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 5), (NEAR_BGR, 20), (OK_BGR, 5)))
    near = {"enabled": True, "band": 0.1, "per_minute": 3}
    daemon = make_daemon(config(tmp_path, str(video), collect={"near": near}))
    summary = daemon.run(threading.Event())
    assert summary.frames == 30 and not summary.events  # nothing alarmed
    sidecars = sorted((tmp_path / "snaps").glob("*.json"))
    assert len(sidecars) == 3  # the minute's quota, though 20 frames were near
    meta = json.loads(sidecars[0].read_text())
    assert meta["sample"] == "near" and meta["verdict"] == []
    assert meta["thresholds"]["error"] == 0.5 and 0.4 < meta["scores"]["error"] < 0.5
    assert meta["model_sha256"] == "a" * 64 and not list((tmp_path / "snaps").glob("*.heat.jpg"))

    dest = tmp_path / "data" / "line-1"
    result = pull(str(tmp_path / "snaps"), dest)
    assert len(result.added) == 3 and result.labelled == 0
    assert not list((tmp_path / "snaps").iterdir())  # off the station once copied and verified
    rows = list(csv.DictReader((dest / "samples.csv").open()))
    assert [r["sample"] for r in rows] == ["near"] * 3
    assert all((dest / r["name"]).is_file() and r["model"] == "scripted" for r in rows)
    assert not (dest / "labels.csv").exists()  # nobody said what they are yet
    again = pull(str(tmp_path / "snaps"), dest)
    assert again.added == [] and len(list(csv.DictReader((dest / "samples.csv").open()))) == 3


def test_an_operator_flags_a_frame_with_its_right_labels_and_pull_makes_them_a_table(
    tmp_path: Path, make_daemon
):
    source = FlakySource(die_after=10**9, refusals=0, period_s=0.005)
    out = RecordingOutput()
    daemon = make_daemon(config(tmp_path, "0"), source=source, outputs=[out])
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(out.results) > 3)
        wrong = daemon.receive(Command("collect", {"right": ["error"]}))
        good = daemon.receive(Command("collect", {"right": []}))
        unsaid = daemon.receive(Command("collect", {"right": None}))
    finally:
        stop.set()
        thread.join(10)
    assert wrong.ok and good.ok and unsaid.ok
    meta = json.loads((tmp_path / "snaps" / wrong.result["sample"]).with_suffix(".json").read_text())
    assert meta["sample"] == "operator" and meta["right_labels"] == ["error"]
    (tmp_path / "snaps" / "20260101-000000-00001-near.jpg").write_bytes(b"half a sample")
    result = pull(str(tmp_path / "snaps"), tmp_path / "data", keep=True)
    assert len(result.added) == 3 and result.labelled == 2
    table = read_rows(tmp_path / "data" / "labels.csv")
    assert table.labels == ("good", "error", "break", "length")
    by_name = {Path(n).name: row for n, row in zip(table.names, table.values, strict=True)}
    assert by_name[wrong.result["sample"]] == [0, 1, 0, 0] and by_name[good.result["sample"]] == [0, 0, 0, 0]
    assert len(list((tmp_path / "snaps").glob("*.json"))) == 3  # --keep leaves them
    assert (tmp_path / "snaps" / "20260101-000000-00001-near.jpg").exists()  # no sidecar: not taken


def test_the_collect_command_refuses_unknown_or_repeated_labels():
    from pi_inspect.edge.verbs import InvalidCommand, right_labels

    labels = ("good", "error")
    assert right_labels({}, labels) == {"right": None}
    assert right_labels({"right": []}, labels) == {"right": []}
    for bad, why in (
        ({"right": ["scratch"]}, "unknown label 'scratch'"),
        ({"right": ["error", "error"]}, "names a label twice"),
        ({"right": "error"}, "must be a list"),
        ({"labels": []}, "expected {}"),
    ):
        try:
            right_labels(bad, labels)
        except InvalidCommand as exc:
            assert why in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
