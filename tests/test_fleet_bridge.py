"""The bridged layout of docs/scale.md on two real mosquittos: a line's own broker bridged to
the central one. What stations publish reaches the central broker (retained reports too), the
desired states the workstation publishes there reach the stations, nothing loops back, and
events published while the central broker is away arrive once it is back."""

from __future__ import annotations

import json

from daemon_helpers import wait_until

from pi_inspect.edge.fleet.watch import FleetWatch


def bridge_conf(central_port: int) -> list[str]:
    """The bridge section of docs/scale.md, pointed at ``central_port`` on loopback."""
    return [
        "connection central",
        f"address 127.0.0.1:{central_port}",
        "topic pi-inspect/# out 1",
        "topic pi-inspect/+/desired in 1",
        "cleansession false",
        "local_clientid bridge-line3-local",
        "remote_clientid bridge-line3",
        "try_private true",
        "restart_timeout 1 2",
        "max_queued_messages 100000",
    ]


def publisher(broker):
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="line3-a")
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def test_a_bridged_line_broker_carries_reports_events_and_desired_states(
    make_mosquitto, mqtt_subscribe
):
    central = make_mosquitto(persistence=True)
    site = make_mosquitto(extra_conf=bridge_conf(central.port))
    watch = FleetWatch(central.host, central.port).start()
    historian = mqtt_subscribe(
        central, ["pi-inspect/+/defect/#"], client_id="historian", clean_session=False
    )
    at_station = mqtt_subscribe(site, ["pi-inspect/line3-a/desired"])
    station = publisher(site)
    try:
        assert watch.wait_connected(10)
        report = {"schema": 1, "device": "line3-a", "at": 1.0e9, "health": {"verdict": "ok"}}
        station.publish("pi-inspect/line3-a/report", json.dumps(report), qos=1, retain=True)
        station.publish("pi-inspect/line3-a/availability", "online", qos=1, retain=True)
        assert wait_until(lambda: "line3-a" in watch.views(), 15)
        assert watch.views()["line3-a"].availability == "online"

        desired = json.dumps({"schema": 1, "rollout": "r-1", "mode": "clear", "bundle": None})
        watch.publish("pi-inspect/line3-a/desired", desired.encode())
        assert at_station.wait_for(lambda m: len(m) >= 1, 15)
        echo = mqtt_subscribe(central, ["pi-inspect/line3-a/desired"])
        assert echo.wait_for(lambda m: len(m) >= 1, 10)  # the retained one
        station.publish("pi-inspect/line3-a/state", "{}", qos=1)  # traffic both ways
        assert not echo.wait_for(lambda m: len(m) >= 2, 2)  # and no copy came back over the bridge

        central.stop()
        for n in range(5):  # the central broker is away: the line's broker holds them
            station.publish(
                "pi-inspect/line3-a/defect/error", json.dumps({"event_id": f"e{n}"}), qos=1
            ).wait_for_publish(5)
        central.start()
        assert historian.wait_for(
            lambda m: {json.loads(p)["event_id"] for _, p, _ in m} >= {f"e{n}" for n in range(5)},
            30,
        ), historian.messages
    finally:
        station.disconnect()
        station.loop_stop()
        watch.close()
