"""TLS with a self-signed CA, client certificates and password authentication, for real."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pi_inspect.edge.events import DefectEvent
from pi_inspect.edge.mqtt import make_output
from pi_inspect.edge.mqtt.config import MqttConfig

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not found")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pi-inspect test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        extra = ["-extfile", "san.ext"] if name == "server" else []
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *extra,
            cwd=d,
        )
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


@pytest.fixture
def tls_broker(make_mosquitto, tmp_path: Path):
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed (tests/run.sh installs mosquitto-clients)")
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "inspector", "s3cret-pw"],
        check=True,
        capture_output=True,
    )
    broker = make_mosquitto(
        extra_conf=[
            f"cafile {pki['ca.crt']}",
            f"certfile {pki['server.crt']}",
            f"keyfile {pki['server.key']}",
            "require_certificate true",
            "allow_anonymous false",
            f"password_file {passwd}",
        ]
    )
    return broker, pki


def tls_config(broker, pki, tmp_path: Path, **overrides) -> MqttConfig:
    base = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "tls": {
            "ca_file": str(pki["ca.crt"]),
            "cert_file": str(pki["client.crt"]),
            "key_file": str(pki["client.key"]),
        },
        "username": "inspector",
    }
    return MqttConfig.model_validate({**base, **overrides})


def event() -> DefectEvent:
    return DefectEvent(str(uuid.UUID(int=7)), "start", "break", 1.7e9, None, 0.8, 2, 40)


def _tls_subscriber_setup(pki):
    def setup(client) -> None:
        client.tls_set(str(pki["ca.crt"]), str(pki["client.crt"]), str(pki["client.key"]))
        client.username_pw_set("inspector", "s3cret-pw")

    return setup


def test_event_is_delivered_over_tls_with_client_certificate_and_password_file(
    tls_broker, mqtt_subscribe, tmp_path: Path
):
    broker, pki = tls_broker
    creds = tmp_path / "mqtt-password"
    creds.write_text("s3cret-pw\n")  # the systemd LoadCredential= form: password only
    config = tls_config(broker, pki, tmp_path, credentials_file=str(creds))
    sub = mqtt_subscribe(broker, ["pi-inspect/secure/#"], setup=_tls_subscriber_setup(pki))
    with make_output(config, tmp_path / "state", "secure") as out:
        out.publish_event(event())
        assert sub.wait_for(lambda m: sub.payloads("pi-inspect/secure/defect/break"))
        assert sub.wait_for(lambda m: out.spool_depth == 0)
    assert json.loads(sub.payloads("pi-inspect/secure/defect/break")[0]) == event().to_dict()
    assert sub.payloads("pi-inspect/secure/availability")[:1] == [b"online"]


def test_wrong_password_is_refused_and_the_event_stays_spooled(tls_broker, tmp_path: Path, caplog):
    broker, pki = tls_broker
    config = tls_config(broker, pki, tmp_path, password="wrong-pw")
    with make_output(config, tmp_path / "state", "secure") as out:
        out.publish_event(event())
        deadline = time.monotonic() + 15
        while "refused" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "refused" in caplog.text
        assert not out.connected and out.spool_depth == 1
    assert "wrong-pw" not in caplog.text


def test_untrusted_server_certificate_is_not_accepted(tls_broker, tmp_path: Path):
    broker, pki = tls_broker
    other = tmp_path / "other"
    other.mkdir()
    other_ca = make_pki(other)["ca.crt"]
    config = tls_config(broker, pki, tmp_path, password="s3cret-pw")
    config = config.model_copy(update={"tls": config.tls.model_copy(update={"ca_file": other_ca})})
    with make_output(config, tmp_path / "state", "secure") as out:
        out.publish_event(event())
        log = broker.log_path
        deadline = time.monotonic() + 15
        while b"OpenSSL Error" not in log.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not out.connected and out.spool_depth == 1
