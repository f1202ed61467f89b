"""Two stations in one daemon: each with its own source, model and pins, sharing one MQTT
connection and one console; a fault stays with the station that has it."""

from __future__ import annotations

import json
import threading
import urllib.request

import cv2
import pytest
from console_helpers import free_port
from daemon_helpers import (
    ERROR_BGR,
    OK_BGR,
    ScriptedClassifier,
    script,
    solid,
    wait_until,
    write_video,
)
from gpiozero.pins.mock import MockFactory
from stream_helpers import MjpegStream

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon.cell import Cell
from pi_inspect.edge.errors import ConfigError

DEVICE = "cell-1"
LEFT_PINS = {"green": 17, "red": 27, "amber": 22}
RIGHT_PINS = {"green": 5, "red": 6, "amber": 13}


def lit(factory: MockFactory, pin: int) -> bool:
    """Whether ``pin`` was ever driven high (blinking included)."""
    return any(state.state for state in factory.pin(pin).states)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def right_camera():
    """A live IP camera that sees only good seams."""
    ok = cv2.imencode(".jpg", solid(OK_BGR))[1].tobytes()
    camera = MjpegStream([ok], fps=20.0)
    yield camera
    camera.close()


def test_two_stations_report_their_own_defects_and_a_dead_camera_stays_local(
    tmp_path, mosquitto_broker, mqtt_subscribe, right_camera
):
    video = write_video(tmp_path / "left.avi", script((OK_BGR, 20), (ERROR_BGR, 10)))
    console_port = free_port()
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "device": {"id": DEVICE},
            "stdout": {"enabled": False},
            "mqtt": {"enabled": True, "host": mosquitto_broker.host, "port": mosquitto_broker.port},
            "console": {"enabled": True, "host": "127.0.0.1", "port": console_port},
            "stations": {
                "left": {
                    "source": {"uri": str(video), "loop": True, "realtime": True},
                    "gpio": {"pin_factory": "mock", "red_mode": "hold", **LEFT_PINS},
                },
                "right": {
                    "source": {"uri": right_camera.url, "reconnect_max_s": 0.5},
                    "gpio": {"pin_factory": "mock", "red_mode": "hold", **RIGHT_PINS},
                },
            },
        }
    )
    left_pins, right_pins = MockFactory(), MockFactory()
    base = f"pi-inspect/{DEVICE}"
    mqtt = mqtt_subscribe(mosquitto_broker, [f"{base}/+/defect/#", f"{base}/+/state"])
    cell = Cell(
        config,
        pin_factory={"left": left_pins, "right": right_pins},
        classifier_loader=lambda _model: ScriptedClassifier(),
    )
    stop = threading.Event()
    runner = threading.Thread(target=cell.run, args=(stop,), daemon=True)
    runner.start()
    try:

        def defects(station: str) -> list[dict]:
            head = f"{base}/{station}/defect/"
            return [json.loads(p) for t, p, _ in list(mqtt.messages) if t.startswith(head)]

        def last_state(station: str) -> dict:
            states = mqtt.payloads(f"{base}/{station}/state")
            return json.loads(states[-1]) if states else {}

        # Both stations inspect; only the left one (its video has defects) raises events.
        assert mqtt.wait_for(lambda _m: len(defects("left")) >= 4, timeout=30)
        assert mqtt.wait_for(lambda _m: last_state("right").get("verdict") == "ok", timeout=20)
        assert {e["station"] for e in defects("left")} == {"left"}
        assert all(e["device"] == DEVICE for e in defects("left"))
        assert defects("right") == []
        assert lit(left_pins, LEFT_PINS["red"]) and not lit(right_pins, RIGHT_PINS["red"])
        assert not lit(left_pins, 6) and not lit(right_pins, 27)  # each on its own pins

        # The console: one tile per station, each station's events under its own name.
        url = f"http://127.0.0.1:{console_port}"
        tiles = get_json(f"{url}/api/overview?station=right")
        assert [t["name"] for t in tiles["stations"]] == ["left", "right"]
        assert tiles["station"] == "right" and tiles["state"]["station"] == "right"
        left_events = get_json(f"{url}/api/events?station=left&size=50")["events"]
        assert left_events and {e["station"] for e in left_events} == {"left"}
        assert get_json(f"{url}/api/events?station=right")["total"] == 0

        # The right camera dies: that station alone goes amber and says so in its state;
        # the left one's events keep flowing.
        right_camera.kill()
        assert wait_until(lambda: right_pins.pin(RIGHT_PINS["amber"]).state, timeout=20)
        assert mqtt.wait_for(lambda _m: last_state("right").get("verdict") == "fault", timeout=20)
        assert "camera" in (last_state("right").get("fault") or "")
        before = len(defects("left"))
        assert mqtt.wait_for(lambda _m: len(defects("left")) >= before + 4, timeout=30)
        assert not left_pins.pin(LEFT_PINS["amber"]).state
        assert last_state("left").get("verdict") != "fault"
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()


# -- config ----------------------------------------------------------------------------------


def test_a_config_without_stations_is_one_station_named_default_with_no_warning():
    warnings: list[str] = []
    config = parse_config({"source": {"uri": "line.mp4"}}, warn=warnings.append)
    assert warnings == []
    stations = config.station_configs()
    assert list(stations) == ["default"] and stations["default"] is config


def test_a_section_a_station_leaves_out_is_the_top_level_one(tmp_path):
    config = parse_config(
        {
            "state_dir": str(tmp_path),
            "decide": {"n": 6, "k": 4},
            "gpio": {"enabled": False},
            "stations": {"a": {"source": {"uri": "a.mp4"}}, "b": {"decide": {"n": 2, "k": 1}}},
        }
    )
    a, b = config.station_configs().values()
    assert (a.decide.n, b.decide.n) == (6, 2)
    assert (a.source.uri, b.source.uri) == ("a.mp4", "0")
    assert a.resolved_state_dir() == tmp_path / "stations" / "a"
    assert a.snapshot_dir() == tmp_path / "stations" / "a" / "snapshots"


@pytest.mark.parametrize("name", ["a/b", "+", "#", "state", "CMD", "", "-x", "x" * 33, "é"])
def test_station_names_are_plain_topic_levels_that_are_not_the_devices_topics(name):
    with pytest.raises(ConfigError) as caught:
        parse_config({"stations": {name: {"gpio": {"enabled": False}}}})
    assert any(p.startswith(f"stations.{name}") for p in caught.value.problems)


def test_pin_and_camera_conflicts_across_stations_are_all_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "stations": {
                    "a": {"source": {"uri": "0"}, "gpio": {"green": 5, "red": 6, "amber": 13}},
                    "b": {
                        "source": {"uri": "/dev/video0"},
                        "gpio": {"green": 5, "red": 19, "amber": 26},
                        "trigger": {"mode": "gpio", "pin": 6},
                    },
                    "c": {"source": {"kind": "picamera2", "uri": "picamera2"}, "gpio": {"enabled": False}},
                    "d": {"source": {"kind": "picamera2", "uri": "picamera2"}, "gpio": {"enabled": False}},
                }
            }
        )
    assert sorted(caught.value.problems) == [
        "stations.b.gpio.green: pin 5 is already used by stations.a.gpio.green",
        "stations.b.source: usb /dev/video0 is already stations.a's camera",
        "stations.b.trigger.pin: pin 6 is already used by stations.a.gpio.red",
        "stations.d.source: picamera2 camera_num 0 is already stations.c's camera",
    ]


def test_the_command_line_source_is_refused_when_there_are_several_stations():
    from pi_inspect.edge.config import with_overrides

    config = parse_config(
        {"stations": {n: {"gpio": {"enabled": False}, "source": {"uri": f"{n}.mp4"}} for n in "ab"}}
    )
    with pytest.raises(ConfigError):
        with_overrides(config, source="other.mp4")
    one = parse_config({"stations": {"line": {"gpio": {"enabled": False}, "source": {"uri": "a.mp4"}}}})
    assert with_overrides(one, source="b.mp4").station_configs()["line"].source.uri == "b.mp4"


def test_metrics_of_two_stations_parse_as_one_family_each(tmp_path):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pi_inspect.edge.console.metrics import make_registry
    from pi_inspect.edge.console.output import ConsoleOutput
    from pi_inspect.edge.events import Stats

    console = ConsoleOutput(object(), stations=("left", "right"))  # type: ignore[arg-type]
    cost = {"model": {"p50": 4.0, "p95": 6.0}}
    for name, fps in (("left", 12.0), ("right", 30.0)):
        console.publish_stats(Stats(fps, 1.0, 2.0, 10, 0, 5.0, True, extra={"model_invoke_ms": cost}, station=name))
    text = generate_latest(make_registry(console)).decode()
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families))
    samples = {(s.name, s.labels.get("station")): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    assert samples[("pi_inspect_fps", "left")] == 12.0 and samples[("pi_inspect_fps", "right")] == 30.0
    assert ("pi_inspect_model_invoke_p50_seconds", "right") in samples


def test_interpreter_threads_are_shared_out_between_stations():
    from pi_inspect.edge.daemon.cell import station_threads

    assert station_threads(1, cores=4) == 3  # one station: all cores but the capture thread's
    assert station_threads(2, cores=4) == 1
    assert station_threads(2, cores=8) == 3
    assert station_threads(3, cores=2) == 1


# -- the shared parts ------------------------------------------------------------------------


def test_the_watchdog_is_fed_only_once_every_running_station_has_turned():
    from daemon_helpers import CountingNotifier

    from pi_inspect.edge.daemon.cell import SharedNotifier

    service = CountingNotifier()
    shared = SharedNotifier(service, ["a", "b"])
    a, b = shared.station("a"), shared.station("b")
    a.ready("inspecting")
    assert "ready" not in service.calls  # READY only once both are
    b.ready("inspecting")
    assert service.calls.count("ready") == 1
    for _ in range(5):
        a.watchdog()
    assert service.calls.count("watchdog") == 0  # b's loop has not turned
    b.watchdog()
    assert service.calls.count("watchdog") == 1
    a.reloading("reloading config and bundle")  # SIGHUP: every station reloads
    b.reloading("reloading config and bundle")
    assert service.calls.count("reloading") == 1
    a.ready("reloaded")
    assert service.calls.count("ready") == 1  # b is still reloading
    b.ready("reloaded")
    assert service.calls.count("ready") == 2  # READY=1 ends the reload for systemd
    a.watchdog()
    shared.finished("b")  # b's source ended: the watchdog no longer waits for it
    assert service.calls.count("watchdog") == 2


def test_one_station_tells_the_service_manager_what_it_did_before():
    from pi_inspect.edge.daemon.cell import SharedNotifier

    texts: list[str] = []

    class Service:
        def ready(self, status=None):
            texts.append(f"READY {status}")

        def status(self, text):
            texts.append(f"STATUS {text}")

        def reloading(self, status=None):
            texts.append(f"RELOADING {status}")

        def watchdog(self): ...

        def stopping(self, status=None): ...

    one = SharedNotifier(Service(), ["default"]).station("default")
    one.ready("inspecting")
    one.status("camera offline")
    one.reloading("reloading config and bundle")
    one.ready("reloaded")
    assert texts == [
        "READY inspecting", "STATUS camera offline",
        "RELOADING reloading config and bundle", "READY reloaded",
    ]  # fmt: skip


def test_commands_go_to_the_station_their_topic_names(mosquitto_broker, mqtt_subscribe, tmp_path):
    from conftest import RecordingReceiver

    from pi_inspect.edge.daemon.hub import Hub
    from pi_inspect.edge.mqtt import make_output
    from pi_inspect.edge.mqtt.config import MqttConfig

    section = MqttConfig(enabled=True, host=mosquitto_broker.host, port=mosquitto_broker.port)
    output = make_output(section, tmp_path, DEVICE, stations=("left", "right"))
    left, right = RecordingReceiver(), RecordingReceiver()
    hub = Hub([output])
    hub.attach("left", left)
    hub.attach("right", right)
    hub.open()
    base = f"pi-inspect/{DEVICE}"
    replies = mqtt_subscribe(mosquitto_broker, [f"{base}/+/cmd/result"])
    try:
        assert wait_until(lambda: output.listening)
        replies.client.publish(f"{base}/right/cmd/acknowledge", b"{}", qos=1)
        replies.client.publish(f"{base}/nowhere/cmd/acknowledge", b"{}", qos=1)
        assert replies.wait_for(lambda m: len(m) == 2)
        assert [c[0] for c in right.calls] == ["acknowledge"] and left.calls == []
        nowhere = json.loads(replies.payloads(f"{base}/nowhere/cmd/result")[0])
        assert nowhere["ok"] is False and "no station 'nowhere'" in nowhere["error"]
        assert json.loads(replies.payloads(f"{base}/right/cmd/result")[0])["ok"] is True
    finally:
        hub.close()


def test_each_station_has_its_own_modbus_block(tmp_path):
    pytest.importorskip("pymodbus")
    from conftest import RecordingReceiver
    from pymodbus.client import ModbusTcpClient

    from pi_inspect.edge.config import output_context
    from pi_inspect.edge.events import ModelInfo, State
    from pi_inspect.edge.plc import registers as r
    from pi_inspect.edge.plc.plugin import PLUGIN

    config = parse_config(
        {
            "state_dir": str(tmp_path),
            "plc": {"enabled": True, "modbus": {"enabled": True, "host": "127.0.0.1", "port": 0}},
            "stations": {n: {"gpio": {"enabled": False}, "source": {"uri": f"{n}.mp4"}} for n in ("left", "right")},
        }
    )
    plc = PLUGIN.build(config.plc, output_context(config))
    receiver = RecordingReceiver()
    plc.subscribe(receiver)
    model = ModelInfo("m", "1", "ab" * 32, ("good", "error"))
    plc.publish_state(State("fault", (), model, 0.0, fault="camera offline", station="right"))
    plc.publish_state(State("ok", (), model, 0.0, station="left"))
    host, port = plc.server("modbus").address
    client = ModbusTcpClient(host, port=port, timeout=5, retries=0)
    try:
        assert client.connect()
        left = client.read_holding_registers(0, count=r.SIZE).registers
        right = client.read_holding_registers(r.STATION_STRIDE, count=r.SIZE).registers
        assert left[8] >> r.FAULT & 1 == 0 and right[8] >> r.FAULT & 1 == 1
        assert client.read_holding_registers(r.SIZE, count=1).isError()  # between the blocks
        assert client.read_holding_registers(2 * r.STATION_STRIDE, count=1).isError()  # no third
        client.write_register(r.STATION_STRIDE, 1 << r.ENABLE)
        client.write_register(r.STATION_STRIDE, 1 << r.ENABLE | 1 << r.TRIGGER)
        assert wait_until(lambda: receiver.commands)
        assert [(c.verb, c.station) for c in receiver.commands] == [("trigger", "right")]
    finally:
        client.close()
        plc.close()


def test_log_lines_written_on_a_stations_threads_name_the_station():
    import logging

    from pi_inspect.edge.daemon.cell import StationLogs

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(StationLogs())
    log = logging.getLogger("pi_inspect.test.stations")
    log.addHandler(handler)
    log.propagate = False
    try:
        for name in ("station-left", "capture-right", "mqtt-sender"):
            thread = threading.Thread(target=log.warning, args=("camera offline: %s", "gone"), name=name)
            thread.start()
            thread.join()
    finally:
        log.removeHandler(handler)
    assert lines == [
        "[left] camera offline: gone",
        "[right] camera offline: gone",
        "camera offline: gone",
    ]


def test_promote_asks_which_station_when_there_are_several(tmp_path, capsys):
    from pi_inspect.edge.cli import main

    config = tmp_path / "cell.toml"
    config.write_text(
        '[stations.a.gpio]\nenabled = false\n[stations.b.gpio]\nenabled = false\n'
        '[stations.a.source]\nuri = "a.mp4"\n[stations.b.source]\nuri = "b.mp4"\n'
    )
    assert main(["promote", "--config", str(config), "--no-reload"]) == 2
    assert "--station NAME (a, b)" in capsys.readouterr().err
    assert main(["promote", "--config", str(config), "--station", "c", "--no-reload"]) == 2
    assert "no station 'c'" in capsys.readouterr().err


def test_home_assistant_sees_one_device_per_station_on_the_devices_availability():
    from pi_inspect.edge.mqtt.discovery import discovery_messages
    from pi_inspect.edge.mqtt.topics import Topics

    device = Topics("pi-inspect", DEVICE)
    found = {
        station: discovery_messages(device.of_station(station), "homeassistant", ("good", "error"), "1")
        for station in ("left", "right")
    }
    ids = {s: {p["device"]["identifiers"][0] for _, p in msgs} for s, msgs in found.items()}
    assert ids == {"left": {"pi-inspect-cell-1_left"}, "right": {"pi-inspect-cell-1_right"}}
    for station, messages in found.items():
        assert all(p["availability"][0]["topic"] == f"pi-inspect/{DEVICE}/availability" for _, p in messages)
        states = {p["state_topic"] for _, p in messages}
        assert states == {f"pi-inspect/{DEVICE}/{station}/state", f"pi-inspect/{DEVICE}/{station}/stats"}
    unique = [p["unique_id"] for msgs in found.values() for _, p in msgs]
    assert len(unique) == len(set(unique))


def test_a_reload_rereads_each_stations_own_sections_and_keeps_a_station_the_file_dropped(tmp_path):
    video = write_video(tmp_path / "ok.avi", script((OK_BGR, 30)))
    path = tmp_path / "cell.toml"

    def write(right_n: int, with_right: bool = True) -> None:
        text = (
            f'state_dir = "{tmp_path / "state"}"\n[stdout]\nenabled = false\n'
            f'[stations.left.source]\nuri = "{video}"\nloop = true\nrealtime = true\n'
            '[stations.left.gpio]\nenabled = false\n'
        )
        if with_right:
            text += (
                f'[stations.right.source]\nuri = "{video}"\nloop = true\nrealtime = true\n'
                f'[stations.right.gpio]\nenabled = false\n[stations.right.decide]\nn = {right_n}\nk = 1\n'
            )
        path.write_text(text)

    from pi_inspect.edge.config import load_config

    write(4)
    cell = Cell(load_config(path), config_path=path, outputs=[],
                classifier_loader=lambda _model: ScriptedClassifier())  # fmt: skip
    stop = threading.Event()
    runner = threading.Thread(target=cell.run, args=(stop,), daemon=True)
    runner.start()
    left, right = cell.stations["left"], cell.stations["right"]
    try:
        assert wait_until(lambda: left.summary.frames > 0 and right.summary.frames > 0)
        write(7)
        assert right.reload() and left.reload()
        assert right.config.decide.n == 7 and left.config.decide.n == 4
        write(9, with_right=False)  # removing a station takes a restart: refused, it runs on
        assert not right.reload() and right.config.decide.n == 7
        frames = right.summary.frames
        assert wait_until(lambda: right.summary.frames > frames)
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
