"""Commands and connection state against a real mosquitto: a retained command never runs (and
is cleared), an empty payload is not a command, an outage is logged once and shows in health."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from test_mqtt_output import RUNNING, config_for, make_event

from pi_inspect.edge.mqtt import make_output

CMD = "pi-inspect/line1/cmd"


def start(broker, receiver, state_dir: Path, **overrides):
    """A started MQTT output for a running model whose commands reach ``receiver``."""
    out = make_output(config_for(broker, **overrides), state_dir, "line1")
    out.subscribe(receiver)
    out.publish_state(RUNNING)
    return out


def test_a_retained_threshold_command_is_not_applied_again_after_a_broker_restart(
    make_mosquitto, mqtt_subscribe, recording_receiver, tmp_path: Path
):
    broker = make_mosquitto(persistence=True)  # retained messages survive the restart
    # a persistent session: the replies sent while it reconnects wait for it
    operator = mqtt_subscribe(broker, [f"{CMD}/result"], client_id="operator", clean_session=False)
    with start(broker, recording_receiver, tmp_path) as out:
        assert operator.wait_for(lambda m: out.listening)
        # retained by mistake: it runs once, as sent (a live message arrives without the flag)
        operator.client.publish(f"{CMD}/thresholds", b'{"error": 0.9}', qos=1, retain=True)
        assert operator.wait_for(lambda m: len(m) == 1)
        operator.client.publish(f"{CMD}/thresholds", b'{"error": 0.3}', qos=1)  # the newer one
        assert operator.wait_for(lambda m: len(m) == 2)
        broker.restart()  # the broker hands its retained 0.9 to the reconnecting output
        ignored = {
            "command": "thresholds",
            "ok": False,
            "error": "retained command ignored",
            "result": {},
        }
        replies = lambda: [json.loads(p) for _, p, _ in operator.messages]  # noqa: E731
        assert operator.wait_for(lambda m: ignored in replies(), timeout=20), replies()
        assert recording_receiver.calls == [
            ("thresholds", {"error": 0.9}),
            ("thresholds", {"error": 0.3}),
        ]
        assert recording_receiver.thresholds["error"] == 0.3
    late = mqtt_subscribe(broker, [f"{CMD}/#"])  # the retained command was cleared
    time.sleep(1.0)
    assert late.messages == []


def test_an_empty_payload_is_not_a_command(
    mosquitto_broker, mqtt_subscribe, recording_receiver, tmp_path: Path
):
    operator = mqtt_subscribe(mosquitto_broker, [f"{CMD}/result"])
    with start(mosquitto_broker, recording_receiver, tmp_path) as out:
        assert operator.wait_for(lambda m: out.listening)
        for verb in ("snapshot", "trigger", "reload", "thresholds"):
            operator.client.publish(f"{CMD}/{verb}", b"", qos=1)
        operator.client.publish(f"{CMD}/trigger", b"{}", qos=1)  # a real one, to know when
        assert operator.wait_for(lambda m: len(m) >= 1)
        time.sleep(0.5)
    assert [json.loads(p)["command"] for _, p, _ in operator.messages] == ["trigger"]
    assert recording_receiver.calls == [("trigger", None)]


def test_an_outage_is_logged_once_and_health_shows_the_real_spool_depth(
    make_mosquitto, recording_receiver, tmp_path: Path, caplog
):
    caplog.set_level(logging.INFO, logger="pi_inspect.edge.mqtt")
    broker = make_mosquitto()
    broker.stop()  # unreachable from the start: paho retries every second
    with start(broker, recording_receiver, tmp_path, discovery={"enabled": False}) as out:
        for i in range(5):
            out.publish_event(make_event(i))
        time.sleep(3.5)
        health = out.health()
        assert health.stats["spool_depth"] == 5 and health.stats["mqtt_connected"] is False
        assert health.faults == {"spool": None}
        broker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and out.health().stats["spool_depth"]:
            time.sleep(0.05)
        assert out.health().stats == {
            "spool_depth": 0,
            "spool_dropped": 0,
            "spool_unpersisted": 0,
            "spool_moved_aside": None,
            "mqtt_connected": True,
        }
        broker.stop()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and out.connected:
            time.sleep(0.05)
        time.sleep(2.5)  # retries against the stopped broker
    lines = [r.getMessage() for r in caplog.records if r.name == "pi_inspect.edge.mqtt"]
    where = f"{broker.host}:{broker.port}"
    assert [line.split(";")[0].split(" (")[0] for line in lines] == [
        f"MQTT broker {where} unreachable",
        f"MQTT connected to {where} again after {lines[1].split('after ')[-1]}",
        f"MQTT connection to {where} lost",
    ], lines
