"""The TOML config is strict: every problem is reported with its key path; no file means defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.config import Config, load_config
from pi_inspect.edge.errors import ConfigError

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


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[gpio]\ngreen = 28\n", "gpio.green: Input should be less than or equal to 27"),
        ('[trigger]\nmode = "gpio"\npin = 40\n', "trigger.pin: Input should be less than"),
        ('[source]\nuri = "99999999999999999999"\n', "source.uri: camera index"),
        ('[source]\nkind = "usb"\nuri = "256"\n', "source.uri: camera index 256 is not in 0-255"),
        ('state_dir = "a\\u0000b"\n', "state_dir: contains a NUL byte"),
        ('[mqtt]\nhost = "broker\\u0000.lan"\n', "mqtt.host: contains a NUL byte"),
        ('[model]\nbundle = ""\n', "model.bundle: must not be empty"),
        ('[snapshots]\ndir = "~no/such/user"\n', None),  # "~no" is a user name: pre-flight's job
        ('state_dir = "~bad user/x"\n', "state_dir: '~bad user' is not a user name"),
        (f'state_dir = "/{"x" * 256}"\n', "state_dir: has a component longer than the 255 bytes"),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_config_refuses_what_the_daemon_could_not_use(tmp_path: Path, capsys, toml, problem):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    if problem is None:
        load_config(path)
        return
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(problem in p for p in err.value.problems), err.value.problems
    assert main(["check-config", str(path)]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('state_dir = "~nosuchuser/x"\n', "state_dir: cannot expand '~nosuchuser/x': no user"),
        ('state_dir = "/dev/null"\n', "state_dir: /dev/null exists and is not a directory"),
        ('state_dir = "{file}/sub"\n', "state_dir: {file}/sub cannot be created: {file} is not a"),
        ('[snapshots]\ndir = "{file}"\n', "snapshots.dir: {file} exists and is not a directory"),
        ('[mqtt]\nenabled = true\nspool.path = "/dev/null"\n', "/dev/null is not a regular file"),
        ('[mqtt]\nenabled = true\nspool.path = "{dir}"\n', "{dir} is a directory, not a file"),
    ],
)
def test_check_config_and_run_refuse_paths_that_cannot_work_on_this_machine(
    tmp_path: Path, capsys, toml, problem
):
    """Validators do no I/O; the pre-flight does, and check-config, run and doctor call it."""
    file = tmp_path / "a-file"
    file.write_text("x")
    state = tmp_path / "state"
    values = {"file": str(file), "dir": str(tmp_path)}
    path = tmp_path / "c.toml"
    body = toml.format(**values)
    if not body.startswith("state_dir"):
        body = f'state_dir = "{state}"\n' + body
    path.write_text(body)
    load_config(path)  # valid as a config: the problem is on this machine
    commands = (
        ["check-config", str(path)],
        ["run", "--config", str(path)],
        ["doctor", "-c", str(path)],
    )
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert problem.format(**values) in err, err
        assert "Traceback" not in err
    assert not state.exists()  # run refused before creating anything
