"""The MQTT output against a real mosquitto broker, checked by a real paho subscriber."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pi_inspect.edge.events import DefectEvent, FrameResult, ModelInfo, State, Stats
from pi_inspect.edge.mqtt import make_output as _make_output
from pi_inspect.edge.mqtt.config import MqttConfig


def make_output(config: MqttConfig, state_dir: Path, device: str = "line1"):
    return _make_output(config, state_dir, device)


def config_for(broker, **overrides) -> MqttConfig:
    base = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
    }
    return MqttConfig.model_validate({**base, **overrides})


def make_event(i: int, kind: str = "start", label: str = "error") -> DefectEvent:
    return DefectEvent(
        event_id=str(uuid.UUID(int=i)),
        kind=kind,
        label=label,
        started_at=1_700_000_000.0 + i,
        ended_at=None if kind == "start" else 1_700_000_001.0 + i,
        peak_score=0.9,
        frames=3,
        first_frame=10 * i,
    )


LABELS = ("error", "break", "length")
RUNNING = State("ok", (), ModelInfo("demo", "1", "ab" * 32, LABELS), 1_700_000_000.0)


def stats(**kw) -> Stats:
    base = dict(
        fps=12.5,
        latency_p50_ms=20.0,
        latency_p95_ms=30.0,
        frames=100,
        dropped_frames=1,
        uptime_s=8.0,
        camera_online=True,
    )
    return Stats(**{**base, **kw})


def test_defect_event_arrives_as_json_and_leaves_the_spool(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/+/defect/#"])
    event = make_event(1)
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.publish_event(event)
        assert sub.wait_for(lambda m: len(m) >= 1)
        assert sub.wait_for(lambda m: out.spool_depth == 0, timeout=5)
    topic, payload, _ = sub.messages[0]
    assert topic == "pi-inspect/line1/defect/error"
    assert json.loads(payload) == event.to_dict()


def test_availability_is_online_while_running_and_stopped_after_close(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/availability"])
    out = make_output(config_for(mosquitto_broker), tmp_path)
    assert sub.wait_for(lambda m: [p for _, p, _ in m] == [b"online"])
    out.close()
    out.close()  # idempotent
    assert sub.wait_for(lambda m: [p for _, p, _ in m] == [b"online", b"stopped"])
    late = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/availability"])
    assert late.wait_for(lambda m: m == [("pi-inspect/line1/availability", b"stopped", True)])


def test_state_is_retained_and_republished_after_a_broker_restart(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    state = State("defect", ("error",), ModelInfo("demo", "1", "ab" * 32), 1_700_000_000.0)
    live = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/state"])
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.publish_state(state)
        assert live.wait_for(lambda m: len(m) == 1)
        late = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/state"])
        assert late.wait_for(lambda m: len(m) == 1)
        assert late.messages[0][2] is True  # retained
        assert json.loads(late.messages[0][1])["model"]["sha256"] == "ab" * 32
        mosquitto_broker.restart()  # persistence off: the broker forgets retained messages
        after = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/state"])
        assert after.wait_for(lambda m: len(m) >= 1, timeout=15)
        assert json.loads(after.messages[0][1]) == state.to_dict()


def test_per_frame_results_are_rate_limited(mosquitto_broker, mqtt_subscribe, tmp_path: Path):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/result", "pi-inspect/line1/stats"])
    config = config_for(mosquitto_broker, result={"enabled": True, "max_rate_hz": 0.5})
    with make_output(config, tmp_path) as out:
        assert sub.wait_for(lambda m: out.connected)
        for i in range(200):  # a burst far faster than 0.5 Hz: only the first passes
            out.publish_result(FrameResult(i, 1.0 + i, {"error": 0.1}, 5.0))
        out.publish_stats(stats())  # a marker that the sender has run after the burst
        assert sub.wait_for(lambda m: sub.payloads("pi-inspect/line1/stats"))
    results = [json.loads(p) for p in sub.payloads("pi-inspect/line1/result")]
    assert [r["frame_index"] for r in results] == [0]


def test_stats_are_published_as_the_daemon_made_them_and_not_retained(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/stats"])
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.publish_stats(stats(extra=dict(out.health().stats)))
        assert sub.wait_for(lambda m: len(m) == 1)
    payload = json.loads(sub.messages[0][1])
    assert payload["fps"] == 12.5
    assert payload["extra"]["spool_depth"] == 0 and payload["extra"]["spool_dropped"] == 0
    assert sub.messages[0][2] is False


def test_snapshot_bytes_are_published_only_when_enabled(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/+/snapshot", "pi-inspect/+/stats"])
    jpeg = b"\xff\xd8fake-jpeg\xff\xd9"
    for device, enabled in (("off", False), ("on", True)):
        config = config_for(mosquitto_broker, snapshot=enabled)
        with make_output(config, tmp_path / device, device) as out:
            out.publish_snapshot(jpeg, make_event(1))
            out.publish_stats(stats())
            assert sub.wait_for(lambda m, d=device: sub.payloads(f"pi-inspect/{d}/stats"))
    assert sub.payloads("pi-inspect/on/snapshot") == [jpeg]
    assert sub.payloads("pi-inspect/off/snapshot") == []


def test_discovery_is_republished_when_home_assistant_comes_online(
    mosquitto_broker, mqtt_subscribe, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["homeassistant/#"])
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.publish_state(RUNNING)  # the model's labels come with the state
        # 3 labels -> 3 binary sensors, plus fps, p50 and p95 sensors
        assert sub.wait_for(lambda m: len({t for t, _, _ in m}) >= 6)
        configs = {t: json.loads(p) for t, p, _ in sub.messages}
        assert len(configs) == 6
        error = configs["homeassistant/binary_sensor/line1/error/config"]
        assert error["state_topic"] == "pi-inspect/line1/state"
        assert error["availability"][0]["topic"] == "pi-inspect/line1/availability"
        assert "homeassistant/sensor/line1/fps/config" in configs
        seen = len(sub.messages)
        sub.client.publish("homeassistant/status", "online")

        def republished(m: list) -> bool:
            again = {t for t, _, _ in m[seen:]}
            return set(configs) <= again

        assert sub.wait_for(republished)  # every config again, whatever else arrives meanwhile


def test_discovery_can_be_switched_off(mosquitto_broker, mqtt_subscribe, tmp_path: Path):
    sub = mqtt_subscribe(mosquitto_broker, ["homeassistant/#", "pi-inspect/line1/stats"])
    config = config_for(mosquitto_broker, discovery={"enabled": False})
    with make_output(config, tmp_path) as out:
        out.publish_stats(stats())
        assert sub.wait_for(lambda m: sub.payloads("pi-inspect/line1/stats"))
    assert [t for t, _, _ in sub.messages if t.startswith("homeassistant/")] == []


def test_malformed_command_gets_an_error_reply_and_changes_nothing(
    mosquitto_broker, mqtt_subscribe, recording_receiver, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/cmd/result"])
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.subscribe(recording_receiver)
        out.publish_state(RUNNING)
        assert sub.wait_for(lambda m: out.listening)
        sub.client.publish("pi-inspect/line1/cmd/thresholds", b'{"error": 7}', qos=1)
        assert sub.wait_for(lambda m: len(m) == 1)
        reply = json.loads(sub.messages[0][1])
        assert reply["command"] == "thresholds" and reply["ok"] is False and reply["error"]
        assert recording_receiver.calls == []
        sub.client.publish("pi-inspect/line1/cmd/thresholds", b'{"error": 0.7}', qos=1)
        assert sub.wait_for(lambda m: len(m) == 2)
    reply = json.loads(sub.messages[1][1])
    assert reply["ok"] is True and reply["result"]["thresholds"]["error"] == 0.7
    assert recording_receiver.calls == [("thresholds", {"error": 0.7})]


def test_thresholds_are_checked_against_the_labels_of_the_last_state(
    mosquitto_broker, mqtt_subscribe, recording_receiver, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/cmd/result"])
    other = State("ok", (), ModelInfo("other", "2", "cd" * 32, ("good", "scratch")), 1.0)
    with make_output(config_for(mosquitto_broker), tmp_path) as out:
        out.subscribe(recording_receiver)
        out.publish_state(other)  # a reload swapped in a model without "error"
        assert sub.wait_for(lambda m: out.listening)
        sub.client.publish("pi-inspect/line1/cmd/thresholds", b'{"error": 0.7}', qos=1)
        assert sub.wait_for(lambda m: len(m) == 1)
    reply = json.loads(sub.messages[0][1])
    assert reply["ok"] is False and "unknown label 'error'" in reply["error"]
    assert recording_receiver.calls == []


def test_commands_switched_off_are_ignored(
    mosquitto_broker, mqtt_subscribe, recording_receiver, tmp_path: Path
):
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/line1/#"])
    config = config_for(mosquitto_broker, commands={"enabled": False})
    with make_output(config, tmp_path) as out:
        out.subscribe(recording_receiver)
        assert sub.wait_for(lambda m: out.connected)
        sub.client.publish("pi-inspect/line1/cmd/trigger", b"{}", qos=1)
        out.publish_stats(stats())
        assert sub.wait_for(lambda m: sub.payloads("pi-inspect/line1/stats"))
    assert recording_receiver.calls == []
    assert sub.payloads("pi-inspect/line1/cmd/result") == []


def test_events_during_a_broker_outage_arrive_in_order_once_it_is_back(
    make_mosquitto, mqtt_subscribe, tmp_path: Path
):
    broker = make_mosquitto(persistence=True)  # keeps the subscriber's session over the restart
    topic = "pi-inspect/line1/defect/error"
    sub = mqtt_subscribe(broker, [topic], client_id="checker", clean_session=False)
    with make_output(config_for(broker), tmp_path) as out:
        out.publish_event(make_event(0))
        assert sub.wait_for(lambda m: len(m) == 1)
        broker.stop()
        assert sub.wait_for(lambda m: not out.connected, timeout=10)
        for i in range(1, 41):
            out.publish_event(make_event(i))
        assert out.spool_depth == 40
        broker.start()
        assert sub.wait_for(lambda m: out.spool_depth == 0 and len(m) >= 41, timeout=20)
    ids = [json.loads(p)["event_id"] for p in sub.payloads(topic)]
    assert list(dict.fromkeys(ids)) == [str(uuid.UUID(int=i)) for i in range(41)]
