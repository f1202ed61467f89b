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
