"""The daemon running an anomaly bundle beside the demo classifier on the same frames, with real
parts: the demo bundle and a tiny int8 anomaly bundle in LiteRT, a folder of rendered seam
frames, a real mosquitto broker, gpiozero's MockFactory, snapshots on disk.

The anomaly model (tests/bundle_helpers.py) calls a frame anomalous where an 8x8 cell is bright:
a good seam with a white speck in its corner is passed as good by the classifier and flagged by
the anomaly model, which is the point of running both.
"""

from __future__ import annotations

import json
import threading

import cv2
import pytest
from daemon_helpers import write_seam_frames

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon import Daemon

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GREEN, RED, AMBER = 17, 27, 22
def test_anomaly_beside_the_classifier_publishes_both_kinds_of_defect_over_mqtt(
    tmp_path, anomaly_bundle, mosquitto_broker, mqtt_subscribe, pins
):
    frames = write_seam_frames(tmp_path / "frames")
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "source": {"kind": "folder", "uri": str(frames)},
            "model": {"num_threads": 1},
            "anomaly": {"bundle": str(anomaly_bundle)},
            "gpio": {"red_mode": "hold"},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.05},
            "device": {"id": "pair"},
            "mqtt": {
                "enabled": True, "host": mosquitto_broker.host, "port": mosquitto_broker.port,
                "reconnect_min_s": 1, "reconnect_max_s": 1,
                "discovery": {"enabled": True},
            },
        }
    )  # fmt: skip
    sub = mqtt_subscribe(mosquitto_broker, ["pi-inspect/pair/#", "homeassistant/#"])
    summary = Daemon(config, pin_factory=pins).run(threading.Event())

    assert summary.frames == 34 and summary.model.startswith("seam-demo+seam-anomaly-tiny")
    ends = [(e.label, e.first_frame, e.last_frame) for e in summary.events]
    assert ends == [("anomaly", 6, 11), ("error", 20, 25)]

    def defects(label):
        return [json.loads(p) for p in sub.payloads(f"pi-inspect/pair/defect/{label}")]

    assert sub.wait_for(lambda _m: len(defects("anomaly")) == 2 and len(defects("error")) == 2)
    start, end = defects("anomaly")
    assert (start["kind"], end["kind"]) == ("start", "end")
    assert start["event_id"] == end["event_id"] and start["peak_score"] > 0.95
    anomaly_sha = json.loads((anomaly_bundle / "manifest.json").read_text())["files"]["model.tflite"]
    assert start["model_sha256"] == anomaly_sha  # the event names the model that raised it
    assert defects("error")[0]["model_sha256"] != anomaly_sha
    assert "anything unlike the good parts" in json.dumps(start)

    # Home Assistant: one entity per alarm condition, the anomaly among them
    assert sub.wait_for(lambda m: any(t.endswith("/anomaly/config") for t, _p, _r in m))
    entity = json.loads(next(p for t, p, _r in sub.messages if t.endswith("/anomaly/config")))
    assert entity["name"].startswith("anomaly present") and entity["state_topic"].endswith("/state")
    state = json.loads(sub.payloads("pi-inspect/pair/state")[-1])
    assert "anomaly" in state["model"]["labels"] and "error" in state["model"]["labels"]

    # the red LED held for each defect, amber never (no fault)
    assert [s.state for s in pins.pin(RED).states] == [False, True, False, True, False]
    assert True not in [s.state for s in pins.pin(AMBER).states]

    # stats carry each model's invoke time
    stats = [json.loads(p) for p in sub.payloads("pi-inspect/pair/stats")]
    cost = next(s["extra"]["model_invoke_ms"] for s in stats if "model_invoke_ms" in s.get("extra", {}))
    assert set(cost) == {"model", "anomaly"} and all(c["p95"] >= c["p50"] > 0 for c in cost.values())


def test_anomaly_snapshot_heat_map_is_the_anomaly_map_where_the_speck_is(tmp_path, anomaly_bundle, pins):
    frames = write_seam_frames(tmp_path / "frames")
    snaps = tmp_path / "snaps"
    config = parse_config(
        {
            "source": {"kind": "folder", "uri": str(frames)},
            "model": {"num_threads": 1},
            "anomaly": {"bundle": str(anomaly_bundle)},
            "snapshots": {"dir": str(snaps)},
            "stdout": {"enabled": False},
        }
    )
    Daemon(config, pin_factory=pins, outputs=[]).run(threading.Event())
    metas = {json.loads(p.read_text())["event"]["label"]: p for p in snaps.glob("*.json")}
    assert set(metas) == {"anomaly", "error"}
    meta = json.loads(metas["anomaly"].read_text())
    heat = cv2.imread(str(snaps / meta["overlay"])).astype(int)
    red_minus_blue = heat[..., 2] - heat[..., 0]
    assert red_minus_blue[90:96, 90:96].mean() > 40  # JET red where the map is hot
    assert red_minus_blue[30:60, 30:60].mean() < -40  # JET blue where the seam is good


def test_anomaly_bundle_alone_is_just_model_bundle(tmp_path, anomaly_bundle, pins):
    from daemon_helpers import RecordingOutput

    frames = write_seam_frames(tmp_path / "frames")
    out = RecordingOutput()
    config = parse_config(
        {
            "source": {"kind": "folder", "uri": str(frames)},
            "model": {"bundle": str(anomaly_bundle), "num_threads": 1},
            "snapshots": {"enabled": False},
        }
    )
    summary = Daemon(config, pin_factory=pins, outputs=[out]).run(threading.Event())
    assert [(e.label, e.first_frame, e.last_frame) for e in summary.events] == [("anomaly", 6, 11)]
    assert out.states[-1].model.labels == ("anomaly",)
    assert [s.state for s in pins.pin(RED).states] == [False, True, False]
