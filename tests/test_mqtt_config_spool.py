"""The [mqtt] config section's validation and the SQLite spool's guarantees (no broker needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from pi_inspect.edge.errors import ConfigError
from pi_inspect.edge.mqtt.client import read_credentials
from pi_inspect.edge.mqtt.config import MqttConfig
from pi_inspect.edge.mqtt.spool import Spool


def test_defaults_are_disabled_with_a_hostname_device_id_and_state_dir_spool():
    from pi_inspect.edge.identity import DeviceConfig

    config = MqttConfig()
    assert config.enabled is False
    assert config.prefix == "pi-inspect" and config.discovery.prefix == "homeassistant"
    device = DeviceConfig().id
    assert device and not set("+#/") & set(device)
    assert config.spool_path(Path("/var/lib/pi-inspect")) == Path(
        "/var/lib/pi-inspect/spool.sqlite3"
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"device_id": "line"},  # now [device] id: an unknown key of this section
        {"prefix": "a//b"},
        {"prefix": "pi/#"},
        {"port": 0},
        {"port": 70000},
        {"qos": 0},
        {"keepalive": 1},
        {"unknown_key": 1},
        {"result": {"max_rate_hz": 0}},
        {"spool": {"max_events": 0}},
        {"tls": {"cert_file": "/c.pem"}},  # a client certificate needs its key
        {"username": "u", "password": "p", "credentials_file": "/run/creds"},
        {"password": "p"},  # a password without a username
        {"reconnect_min_s": 10, "reconnect_max_s": 5},
    ],
)
def test_invalid_settings_are_rejected(bad):
    with pytest.raises(ValidationError):
        MqttConfig.model_validate(bad)


def test_password_never_appears_in_the_config_repr_or_the_credentials_repr(caplog):
    config = MqttConfig(username="inspector", password="s3cret-pw")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").info("config: %s %r", config, config)
    creds = read_credentials(config)
    assert creds.password == "s3cret-pw"
    assert "s3cret-pw" not in repr(config) + str(config) + repr(creds) + caplog.text


def test_credentials_file_holds_a_password_or_username_and_password(tmp_path: Path):
    one = tmp_path / "one"
    one.write_text("pw1\n")
    two = tmp_path / "two"
    two.write_text("bob\npw2\n")
    assert read_credentials(MqttConfig(username="al", credentials_file=one)).password == "pw1"
    creds = read_credentials(MqttConfig(credentials_file=two))
    assert (creds.username, creds.password) == ("bob", "pw2")
    with pytest.raises(ConfigError) as err:
        read_credentials(MqttConfig(credentials_file=tmp_path / "missing"))
    assert "missing" in str(err.value) and "\n" not in str(err.value)


def test_spool_keeps_order_across_reopen_and_forgets_only_removed_rows(tmp_path: Path):
    path = tmp_path / "spool.sqlite3"
    with Spool(path, max_events=100) as spool:
        seqs = [spool.append(f"t/{i}", f"p{i}".encode()) for i in range(5)]
        spool.remove(seqs[1])
        spool.remove(seqs[1])  # removing twice is harmless (a duplicate PUBACK)
    with Spool(path, max_events=100) as spool:
        rows = spool.after(0, 10)
        assert [r.topic for r in rows] == ["t/0", "t/2", "t/3", "t/4"]
        assert spool.depth == 4
        assert [r.topic for r in spool.after(seqs[2], 1)] == ["t/3"]
        new = spool.append("t/5", b"p5")
        assert new > seqs[-1]  # sequence numbers are never reused, so order survives restarts


def test_full_spool_drops_the_oldest_and_counts_them_persistently(tmp_path: Path):
    path = tmp_path / "spool.sqlite3"
    with Spool(path, max_events=10) as spool:
        for i in range(25):
            spool.append("t", str(i).encode())
        assert spool.depth == 10 and spool.dropped == 15
        assert [r.payload for r in spool.after(0, 100)] == [str(i).encode() for i in range(15, 25)]
    with Spool(path, max_events=10) as spool:
        assert spool.dropped == 15


@pytest.mark.parametrize("bad", ["line/1", "line+", "#", ""])
def test_a_device_id_that_is_not_one_topic_level_is_rejected(bad):
    from pi_inspect.edge.identity import DeviceConfig

    with pytest.raises(ValidationError):
        DeviceConfig.model_validate({"id": bad})
