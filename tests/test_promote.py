"""Promotion with real bundles and the real runtime: a candidate in shadow, the gate, the switch,
and the station rolling back by itself when a promoted model's alarm rate is not the one its
shadow period measured."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from daemon_helpers import wait_until

from pi_inspect.edge.bundle import default_bundle_dir, read_manifest, write_manifest
from pi_inspect.edge.config import parse_config
from pi_inspect.edge.deploy import CURRENT, deploy_local
from pi_inspect.edge.promote import PromotionRefused, promote
from pi_inspect.edge.synth.video import render_video

pytest.importorskip("ai_edge_litert")


def variant(src: Path, dest: Path, version: str, alarm_on_everything: bool = False) -> Path:
    """A copy of ``src`` with another version (so another bundle), or thresholds that make
    every label alarm on every frame: what a bad retraining could ship."""
    shutil.copytree(src, dest)
    data = dict(read_manifest(dest).raw)
    data["version"] = version
    if alarm_on_everything:
        data["thresholds"] = {
            label: (0.0 if data["alarms"].get(label) == "above" else 1.0)
            for label in data["thresholds"]
        }
    write_manifest(dest, data)
    return dest


@pytest.fixture
def station(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    v1 = variant(default_bundle_dir(), tmp_path / "v1", "1")
    deploy_local(v1, models)
    video = tmp_path / "seam.mp4"
    render_video(video, frames=120, seed=3, size=(320, 240), fps=15.0)

    def config(**shadow):
        return parse_config({
            "source": {"uri": str(video)},
            "state_dir": str(tmp_path / "state"),
            "model": {"bundle": str(models / CURRENT), "num_threads": 1},
            "gpio": {"enabled": False},
            "stdout": {"enabled": False},
            "shadow": {"min_frames": 100, "watch_frames": 60, **shadow},
        })

    return tmp_path, models, config


def run(daemon_config, make_daemon):
    from pi_inspect.edge.daemon import load_from_config

    return make_daemon(daemon_config, classifier_loader=load_from_config, pin_factory=None).run(
        threading.Event()
    )


def test_a_candidate_that_agrees_is_promoted_and_confirmed_by_the_line(station, make_daemon):
    tmp_path, models, config = station
    v2 = variant(default_bundle_dir(), tmp_path / "v2", "2")
    shadowing = config(bundle=str(v2))
    with pytest.raises(PromotionRefused, match="no shadow record of this candidate"):
        promote(shadowing)
    run(shadowing, make_daemon)
    record = json.loads((tmp_path / "state" / "shadow.json").read_text())
    assert record["frames"] == 120 and record["agreement"] == 1.0
    result = promote(shadowing)
    assert (models / CURRENT).resolve().name == result.current and result.previous is not None
    assert result.expected_alarm_rate == record["candidate_alarm_rate"]
    summary = run(config(), make_daemon)
    assert f"{read_manifest(v2).name} 2 " in summary.model
    promotion = json.loads((tmp_path / "state" / "promotion.json").read_text())
    assert promotion["outcome"] == "confirmed" and promotion["from"] == "candidate_alarm_rate"


def test_a_forced_bad_promotion_is_rolled_back_by_the_station_itself(station, make_daemon):
    tmp_path, models, config = station
    before = (models / CURRENT).resolve().name
    bad = variant(default_bundle_dir(), tmp_path / "bad", "3", alarm_on_everything=True)
    shadowing = config(bundle=str(bad))
    run(shadowing, make_daemon)
    record = json.loads((tmp_path / "state" / "shadow.json").read_text())
    assert record["candidate_alarm_rate"] == 1.0 > record["service_alarm_rate"]
    with pytest.raises(PromotionRefused, match="agreement"):
        promote(shadowing)
    assert (models / CURRENT).resolve().name == before  # refused: nothing switched
    result = promote(shadowing, force=True)
    assert result.expected_alarm_rate == record["service_alarm_rate"]  # what the line looks like
    assert any("forced past" in note for note in result.notes)
    assert (models / CURRENT).resolve().name != before
    run(config(), make_daemon)
    assert wait_until(lambda: (models / CURRENT).resolve().name == before, timeout=60)
    promotion = json.loads((tmp_path / "state" / "promotion.json").read_text())
    assert promotion["outcome"] == "rolled back" and "outside" in promotion["reason"]
    assert promotion["alarm_rate"] == 1.0
