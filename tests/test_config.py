"""The TOML config is strict: every problem is reported with its key path; no file means defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import Config, load_config
from edge.errors import ConfigError

BAD = """
[source]
kind = "webcam"
reconnect_min_s = 5.0
reconnect_max_s = 1.0
colour = "red"

[decide]
k = 5
n = 3

[trigger]
mode = "gpio"

[model]
thresholds = { error = 1.5 }

[gpio]
red = 17

[sneaky]
x = 1
"""


def test_no_config_file_gives_valid_defaults():
    config = load_config(None)
    assert config == Config()
    assert config.trigger.mode == "continuous" and config.mqtt.enabled is False


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    keys = {p.split(":")[0] for p in problems}
    assert {
        "source.kind",
        "source.reconnect_max_s",
        "source.colour",
        "decide.k",
        "trigger.pin",
        "model.thresholds.error",
        "sneaky",
    } <= keys
    assert "source.colour: unknown key" in problems


def test_pin_conflict_is_a_problem_line(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[gpio]\nred = 17\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["gpio.red: pin 17 is already used by gpio.green"]


def test_wrong_types_are_not_coerced(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[source]\nloop = "yes"\n[pipeline]\nqueue = "2"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert {p.split(":")[0] for p in info.value.problems} == {"source.loop", "pipeline.queue"}


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[source]\nuri = "videos/line.mp4"\n[model]\nbundle = "bundles/v2"\n')
    config = load_config(path)
    assert config.source.uri == str(tmp_path / "videos/line.mp4")
    assert config.model.bundle == str(tmp_path / "bundles/v2")
    assert load_config(path).source.uri != "videos/line.mp4"


def test_camera_indices_and_urls_are_not_turned_into_paths(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[source]\nuri = "rtsp://cam/stream"\n')
    assert load_config(path).source.uri == "rtsp://cam/stream"


def test_check_config_prints_each_problem_and_exits_2(tmp_path: Path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "decide.k: must be <= decide.n (3)" in err
    assert 'trigger.pin: required when trigger.mode = "gpio"' in err
    assert "Traceback" not in err


def test_check_config_reports_broken_toml_with_its_line(tmp_path: Path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text("[source\nuri = 1\n")
    assert main(["check-config", str(path)]) == 2
    assert "line 1" in capsys.readouterr().err


def test_check_config_accepts_a_good_file(tmp_path: Path, capsys):
    path = tmp_path / "good.toml"
    path.write_text('[source]\nuri = "/dev/video0"\n[trigger]\nmode = "gpio"\npin = 5\n')
    assert main(["check-config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
