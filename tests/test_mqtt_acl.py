"""Broker ACLs are what protect the command topics: the mosquitto ACL docs/mqtt.md shows, on a
real broker, lets the line's PLC gateway command a station and keeps a dashboard (and anyone
anonymous) from doing so."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from test_mqtt_output import RUNNING, config_for

from pi_inspect.edge.mqtt import make_output

ROOT = Path(__file__).resolve().parents[1]
USERS = {"line3-a": "station-secret", "plc-gateway-line3": "plc-secret", "dashboard": "view-secret"}


def documented_acl() -> str:
    """The ACL block of docs/mqtt.md, as written there."""
    text = (ROOT / "docs" / "mqtt.md").read_text()
    return re.search(r"```text\n(# /etc/mosquitto/acl\n.*?)```", text, re.S).group(1)


@pytest.fixture
def acl_broker(make_mosquitto, tmp_path):
    if subprocess.run(["which", "mosquitto_passwd"], capture_output=True).returncode:
        pytest.skip("mosquitto_passwd is not installed")
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    acl = tmp_path / "acl"
    acl.write_text(documented_acl())
    return make_mosquitto(
        extra_conf=["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
    )


def client(broker, user: str | None):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if user is not None:
        c.username_pw_set(user, USERS[user])
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def test_only_the_plc_gateway_may_command_a_station_under_the_documented_acl(
    acl_broker, recording_receiver, tmp_path
):
    config = config_for(acl_broker, prefix="pi-inspect/line3", username="line3-a",
                        password=USERS["line3-a"], discovery={"enabled": False})
    with make_output(config, tmp_path, "line3-a") as out:
        out.subscribe(recording_receiver)
        out.publish_state(RUNNING)
        deadline = time.monotonic() + 10
        while not out.listening and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.listening
        topic = "pi-inspect/line3/line3-a/cmd/acknowledge"
        for user in ("dashboard", None):  # a read-only user, and an anonymous client
            intruder = client(acl_broker, user)
            try:
                intruder.publish(topic, b"{}", qos=1).wait_for_publish(5)
            except RuntimeError:  # anonymous: the broker refused the connection itself
                assert user is None
            intruder.loop_stop()
            intruder.disconnect()
        time.sleep(1.0)
        assert recording_receiver.calls == []  # nothing reached the station
        plc = client(acl_broker, "plc-gateway-line3")
        plc.publish(topic, b"{}", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while not recording_receiver.calls and time.monotonic() < deadline:
            time.sleep(0.05)
        plc.loop_stop()
        plc.disconnect()
        assert recording_receiver.calls == [("acknowledge", None)]
