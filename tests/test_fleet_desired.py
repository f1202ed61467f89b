"""Desired state: a station with ``[fleet]`` on fetches the bundle the workstation names for
it (over HTTP, only from its URL prefix), checks it is that bundle, installs it as ``deploy``
does (its golden set run in a child process), runs it in shadow or promotes it, and says how it
went; a bundle it cannot apply leaves it on what it runs."""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from bundle_helpers import make_bundle
from daemon_helpers import FlakySource, RecordingOutput, wait_until
from test_deploy import _golden_off

from pi_inspect.edge.bundle import read_manifest
from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon
from pi_inspect.edge.daemon.app import open_outputs
from pi_inspect.edge.deploy import deploy_local
from pi_inspect.edge.fleet.desired import InvalidDesired, parse_desired


def packed(bundle: Path, www: Path) -> tuple[str, str]:
    """``bundle`` as a tar in ``www``: (file name, its manifest's content sha256)."""
    sha = read_manifest(bundle).content_sha256
    with tarfile.open(www / f"{sha}.tar", "w") as tar:
        tar.add(bundle, arcname=bundle.name)
    return f"{sha}.tar", sha


def desired(rollout: str, mode: str, sha: str, url: str, name: str = "seam") -> bytes:
    bundle = {"name": name, "sha256": sha, "url": url}
    return json.dumps({"schema": 1, "rollout": rollout, "mode": mode, "bundle": bundle}).encode()


@pytest.mark.timeout(180)
def test_a_station_shadows_then_promotes_what_the_fleet_wants_and_refuses_what_it_cannot(
    tmp_path, files, mosquitto_broker
):
    www, prefix = files
    models = tmp_path / "models"
    models.mkdir()
    deploy_local(make_bundle(tmp_path, "seam", "1"), models)
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "device": {"id": "line3-a"},
            "model": {"bundle": str(models / "current")},
            "gpio": {"pin_factory": "mock"},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.1},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": mosquitto_broker.port},
            "fleet": {"enabled": True, "url_prefix": prefix},
        }
    )
    out = RecordingOutput()
    daemon = Daemon(
        config, source=FlakySource(die_after=10**9, refusals=0, period_s=0.01),
        outputs=[*open_outputs(config), out],
    )  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    fleet = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    fleet.connect("127.0.0.1", mosquitto_broker.port)
    fleet.loop_start()
    topic = "pi-inspect/line3-a/desired"

    def outcome(rollout: str):
        for stats in reversed(out.stats):
            d = stats.extra.get("desired")
            if d and d["rollout"] == rollout and d["state"] != "applying":
                return d
        return None

    def model_version() -> str | None:
        return out.states[-1].model.version if out.states and out.states[-1].model else None

    try:
        assert wait_until(lambda: model_version() == "1", timeout=60)
        name, sha = packed(make_bundle(tmp_path, "seam", "2"), www)
        fleet.publish(topic, desired("r1", "shadow", sha, prefix + name), qos=1, retain=True)
        assert wait_until(lambda: outcome("r1"), timeout=60)
        assert outcome("r1")["state"] == "applied", outcome("r1")
        assert wait_until(
            lambda: (
                (out.stats[-1].extra.get("shadow") or {}).get("candidate", {}).get("version") == "2"
            ),
            timeout=60,
        )
        assert model_version() == "1"  # in shadow only

        fleet.publish(topic, desired("r2", "promote", sha, prefix + name), qos=1, retain=True)
        assert wait_until(lambda: outcome("r2"), timeout=60)
        assert outcome("r2")["state"] == "applied", outcome("r2")
        assert wait_until(lambda: model_version() == "2", timeout=60)
        assert (models / "current").resolve().name.endswith(sha[:12])

        bad_name, bad_sha = packed(make_bundle(tmp_path, "seam", "3", edit=_golden_off), www)
        fleet.publish(
            topic, desired("r3", "promote", bad_sha, prefix + bad_name), qos=1, retain=True
        )
        assert wait_until(lambda: outcome("r3"), timeout=60)
        assert outcome("r3")["state"] == "failed" and "golden set" in outcome("r3")["reason"]

        other = desired("r4", "promote", "0" * 64, prefix + name)  # not the bundle it names
        fleet.publish(topic, other, qos=1, retain=True)
        assert wait_until(lambda: outcome("r4"), timeout=60)
        assert "not 000000000000" in outcome("r4")["reason"]

        elsewhere = desired("r5", "promote", sha, "http://elsewhere.example/" + name)
        fleet.publish(topic, elsewhere, qos=1, retain=True)
        assert wait_until(lambda: outcome("r5"), timeout=60)
        assert "not under fleet.url_prefix" in outcome("r5")["reason"]
        assert model_version() == "2"  # every refused one left the station as it was

        fleet.publish(topic, desired("r6", "rollback", sha, prefix + name), qos=1, retain=True)
        assert wait_until(lambda: outcome("r6"), timeout=60)
        assert outcome("r6")["state"] == "applied", outcome("r6")
        assert wait_until(lambda: model_version() == "1", timeout=60)  # the fleet's undone

        deploy_local(make_bundle(tmp_path / "by-hand", "seam", "2"), models)  # not the fleet's
        fleet.publish(topic, desired("r7", "rollback", sha, prefix + name), qos=1, retain=True)
        assert wait_until(lambda: outcome("r7"), timeout=60)
        assert outcome("r7")["state"] == "applied", outcome("r7")
        assert (models / "current").resolve().name.endswith(sha[:12])  # left as it was
    finally:
        fleet.loop_stop()
        fleet.disconnect()
        stop.set()
        thread.join(30)


@pytest.mark.parametrize(
    "payload, why",
    [
        ({"schema": 2}, "schema 1"),
        (
            {
                "schema": 1,
                "rollout": "r",
                "mode": "now",
                "bundle": {"name": "n", "sha256": "a" * 64, "url": "u"},
            },
            "mode",
        ),  # noqa: E501
        (
            {
                "schema": 1,
                "rollout": "r",
                "mode": "shadow",
                "bundle": {"name": "n", "sha256": "A" * 64, "url": "u"},
            },
            "hex",
        ),  # noqa: E501
        (
            {
                "schema": 1,
                "rollout": "r",
                "mode": "shadow",
                "bundle": {"name": "n", "sha256": "a" * 64},
            },
            "strings",
        ),  # noqa: E501
        ({"schema": 1, "rollout": "r", "mode": "shadow", "bundle": {}, "extra": 1}, "only"),
    ],
)
def test_a_desired_state_that_is_not_schema_1_is_refused_with_its_reason(payload, why):
    with pytest.raises(InvalidDesired, match=why):
        parse_desired(payload)


def test_fleet_needs_a_url_prefix_to_fetch_from():
    from pi_inspect.edge.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config({"fleet": {"enabled": True}})
    assert any("url_prefix" in problem for problem in info.value.problems)


def test_a_fetch_that_failed_is_tried_again_when_the_same_desired_state_comes_back(
    tmp_path, files
):
    from conftest import free_loopback_port

    from pi_inspect.edge.fleet.desired import Applier, Desired

    def refuse(folder: Path) -> str:
        raise ValueError("golden set failed")

    applier = Applier("http://127.0.0.1:", 1 << 20, refuse, lambda mode, name: None)
    try:
        away = Desired(
            "r-1", "shadow", "seam", "ab" * 32, f"http://127.0.0.1:{free_loopback_port()}/x.tar"
        )

        def outcome() -> dict:
            return applier.health().stats["desired"]

        assert applier.submit(away)
        assert wait_until(lambda: outcome()["state"] == "failed", 10)
        assert outcome()["reason"].startswith("cannot fetch http://127.0.0.1:")
        assert applier.submit(away)  # the server was away: worth another try
        assert wait_until(lambda: outcome()["state"] == "failed", 10)

        www, prefix = files
        name, sha = packed(make_bundle(tmp_path, "seam", "2"), www)
        fetched = Desired("r-1", "shadow", "seam", sha, prefix + name)
        assert applier.submit(fetched)
        assert wait_until(lambda: outcome()["state"] == "failed" and outcome()["sha256"] == sha, 30)
        assert outcome()["reason"] == "golden set failed"
        assert not applier.submit(fetched)  # fetched and refused: a repeat is not redone
    finally:
        applier.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not found")
def test_bundles_come_over_https_verified_against_the_configured_ca(tmp_path):
    from test_mqtt_tls import make_pki

    from pi_inspect.edge.fleet.desired import Applier, Desired
    from pi_inspect.edge.fleet.rollout_run import serve_folder

    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    www = tmp_path / "www"
    www.mkdir()
    name, sha = packed(make_bundle(tmp_path, "seam", "2"), www)
    server = serve_folder(www, "127.0.0.1", 0, (pki["server.crt"], pki["server.key"]))
    prefix = f"https://127.0.0.1:{server.server_address[1]}/"
    installed: list[str] = []

    def install(folder: Path) -> str:
        installed.append(read_manifest(folder).content_sha256)
        return "seam-2"

    trusting = Applier(prefix, 1 << 24, install, lambda mode, n: None, ca_file=pki["ca.crt"])
    default = Applier(prefix, 1 << 24, install, lambda mode, n: None)
    try:
        wanted = Desired("r-1", "shadow", "seam", sha, prefix + name)
        assert trusting.submit(wanted) and default.submit(wanted)
        for applier in (trusting, default):
            assert wait_until(
                lambda a=applier: a.health().stats["desired"]["state"] != "applying", 30
            )
        assert trusting.health().stats["desired"]["state"] == "applied", trusting.health().stats
        refused = default.health().stats["desired"]
        assert refused["state"] == "failed" and "CERTIFICATE_VERIFY_FAILED" in refused["reason"]
        assert installed == [sha]
    finally:
        trusting.close()
        default.close()
        server.shutdown()
        server.server_close()


def test_a_ca_file_without_an_https_prefix_is_refused():
    from pi_inspect.edge.errors import ConfigError

    fleet = {"enabled": True, "url_prefix": "http://ws:8765/", "ca_file": "/etc/ca.crt"}
    with pytest.raises(ConfigError) as refused:
        parse_config({"fleet": fleet})
    assert any("ca_file is for an https:// url_prefix" in p for p in refused.value.problems)
    parse_config({"fleet": {**fleet, "url_prefix": "https://ws:8765/"}})  # no I/O: not read here
