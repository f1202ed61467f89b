"""The broker connection is logged once per change: connected, lost, unreachable; not per retry."""

from __future__ import annotations

import logging

from pi_inspect.edge.mqtt.link import Link


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pi_inspect.edge.mqtt"]


def test_an_outage_with_many_retries_logs_one_line_when_it_starts_and_one_when_it_ends(caplog):
    caplog.set_level(logging.INFO)
    now = [0.0]
    link = Link("broker", 1883, (1, 30), clock=lambda: now[0])
    for _ in range(50):  # the broker is not there at start: paho retries
        link.down()
    now[0] = 12.0
    link.up()
    link.down("connection lost")
    for _ in range(50):
        link.down()
    now[0] = 40.0
    link.up()
    link.closed()
    assert lines(caplog) == [
        "MQTT broker broker:1883 unreachable; retrying every 1-30 s, events are kept in the spool",
        "MQTT connected to broker:1883 again after 12 s",
        "MQTT connection to broker:1883 lost (connection lost); events are kept in the spool",
        "MQTT connected to broker:1883 again after 28 s",
    ]
    assert link.state == "down" and not link.connected


def test_a_first_connection_logs_connected_once(caplog):
    caplog.set_level(logging.INFO)
    link = Link("b", 1, (1, 1))
    link.up()
    link.up()
    assert lines(caplog) == ["MQTT connected to b:1"] and link.connected
