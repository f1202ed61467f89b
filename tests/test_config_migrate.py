"""Configs survive upgrades: an old config starts with one warning per old key, and
``config --migrate`` rewrites it into one that passes with no warning."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pi_inspect.edge.config import load_config, parse_config
from pi_inspect.edge.config_migrate import MOVED, REMOVED, dumps, migrate
from pi_inspect.edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# A config as it was written before [device] and [stdout] existed, with a key since removed.
OLD = """\
# line 3, left camera
[source]
uri = "{video}"

[gpio]
enabled = false

[snapshots]
enabled = false

[output]
stdout = true
stats_interval_s = 1.0

[mqtt]
enabled = false
device_id = "line-3"
stats_interval_s = 30
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pi_inspect.edge.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.fixture
def old_config(tmp_path: Path) -> Path:
    from daemon_helpers import OK_BGR, script, write_video

    video = write_video(tmp_path / "line.avi", script((OK_BGR, 20)))
    path = tmp_path / "old.toml"
    path.write_text(OLD.format(video=video))
    return path


def test_old_keys_are_carried_over_with_one_warning_each(old_config, caplog):
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.config"):
        config = load_config(old_config)
    assert config.device.id == "line-3" and config.stdout.enabled is True
    assert config.output.stats_interval_s == 1.0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert any(m.startswith("mqtt.device_id: renamed to device.id") and '[device] id = "line-3"' in m
               for m in lines)
    assert any(m.startswith("mqtt.stats_interval_s: removed") for m in lines)
    assert any(m.startswith("output.stdout: renamed to stdout.enabled") for m in lines)


def test_check_config_warns_and_passes_and_the_migrated_file_passes_silently(old_config, tmp_path):
    check = cli("check-config", str(old_config), cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    warnings = [ln for ln in check.stderr.splitlines() if ln.startswith("warning: ")]
    assert [w.split(":")[1].strip() for w in warnings] == [
        "mqtt.stats_interval_s", "mqtt.device_id", "output.stdout"
    ]
    assert "config --migrate" in check.stderr
    migrated = cli("config", "--migrate", str(old_config), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    new = tmp_path / "new.toml"
    new.write_text(migrated.stdout)
    again = cli("check-config", str(new), cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert load_config(new) == load_config(old_config)


def test_an_old_config_starts_the_daemon_and_inspects(old_config, tmp_path):
    run = cli("run", "--config", str(old_config), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr.count("renamed to device.id") == 1
    assert '"device":"line-3"' in run.stdout  # stdout kept on, and the identity carried over
    assert "invalid config" not in run.stderr


def test_a_value_that_cannot_be_carried_over_is_a_problem_with_its_key_path():
    with pytest.raises(ConfigError) as err:
        parse_config({"mqtt": {"device_id": "a"}, "device": {"id": "b"}})
    assert err.value.problems == [
        "mqtt.device_id: renamed to device.id, which is set to another value as well: keep one"
    ]
    assert parse_config({"mqtt": {"device_id": "a"}, "device": {"id": "a"}}).device.id == "a"


def test_every_old_key_is_gone_from_the_models_and_every_new_key_exists():
    from pi_inspect.edge.config_doc import keys

    known = {k.path for k in keys()} | {"device.id"}
    assert not set(MOVED) & known and not set(REMOVED) & known
    assert set(MOVED.values()) <= known


def test_migration_copies_instead_of_changing_the_callers_data_and_handles_deep_nesting():
    data = {"mqtt": {"device_id": "x"}}
    new, warnings, problems = migrate(data)
    assert data == {"mqtt": {"device_id": "x"}} and new == {"mqtt": {}, "device": {"id": "x"}}
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = node = {}
    assert migrate(deep)[1:] == ([], [])


def test_dumps_writes_toml_that_reads_back_the_same():
    import tomllib

    data = {"state_dir": "/var/lib/x", "source": {"roi": [0.1, 0.2, 0.5, 0.5], "uri": 'a "b"'},
            "model": {"thresholds": {"error": 0.6, "odd key": 1.0}}, "mqtt": {"tls": {"insecure": True}},
            "empty": {}}
    assert tomllib.loads(dumps(data)) == data


def test_a_reload_that_changes_the_device_id_says_it_needs_a_restart():
    from pi_inspect.edge.daemon.loop import restart_needed

    old = parse_config({"device": {"id": "line-3"}})
    new = parse_config({"device": {"id": "line-4"}, "mqtt": {"port": 1884}})
    assert restart_needed(old, new) == {"device": ("id",), "mqtt": ("port",)}
