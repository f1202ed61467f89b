"""An anomaly bundle's manifest: what task ``anomaly`` demands, checked without TensorFlow."""

from __future__ import annotations

import copy

import pytest
from bundle_helpers import ANOMALY_MEANING, anomaly_manifest

from pi_inspect.edge.bundle import parse_manifest
from pi_inspect.edge.errors import BundleError

SHA = "0" * 64


def manifest(**changes) -> dict:
    data = anomaly_manifest()
    data["schema_version"] = 1
    data["files"] = {"model.tflite": SHA, "golden.npz": SHA}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_anomaly_manifest_parses_its_label_threshold_meaning_and_calibration():
    m = parse_manifest(manifest())
    assert m.task == "anomaly"
    assert m.labels == ("anomaly",)
    assert m.thresholds == {"anomaly": 0.5}
    assert m.alarms == {"anomaly": "above"}
    assert m.meanings["anomaly"].meaning == ANOMALY_MEANING
    assert m.outputs == {"scores": "anomaly_score", "map": "anomaly_map"}
    assert m.anomaly.false_alarm_target == 0.005
    assert m.anomaly.calibrated_on == 4
    assert m.anomaly.map_size == (12, 12)
    assert m.head is None


def test_anomaly_table_is_optional():
    m = parse_manifest(manifest(anomaly=None))
    assert m.anomaly is not None and m.anomaly.map_size is None


def test_classifier_manifest_has_no_anomaly_spec(tmp_path):
    from bundle_helpers import demo_manifest

    data = demo_manifest()
    data["files"] = {"model.tflite": SHA, "golden.npz": SHA}
    assert parse_manifest(data).anomaly is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"labels": ["defect"], "thresholds": {"defect": 0.5}, "alarms": {"defect": "above"}, "meanings": None}, "exactly one label, 'anomaly'"),
        ({"labels": ["anomaly", "other"], "meanings": None}, "exactly one label, 'anomaly'"),
        ({"thresholds": {}}, "calibrated threshold in (0, 1)"),
        ({"thresholds": {"anomaly": 0.0}}, "calibrated threshold in (0, 1)"),
        ({"thresholds": {"anomaly": 1.0}}, "calibrated threshold in (0, 1)"),
        ({"alarms": {"anomaly": "below"}, "meanings": None}, "must alarm when present"),
        ({"meanings": {"anomaly": {"alarm": "never", "meaning": "x"}}}, "must alarm when present"),
        ({"outputs": {"scores": "anomaly_score"}}, "outputs 'scores' and 'map'"),
        ({"outputs": {"map": "anomaly_map"}}, "outputs must map 'scores'"),
        ({"heatmap": {"pool": "gap"}}, "Grad-CAM 'heatmap' head does not apply"),
        ({"anomaly": [1]}, "'anomaly' must be an object"),
        ({"anomaly": {"false_alarm_rate": 0.01}}, "unknown key(s)"),
        ({"anomaly": {"false_alarm_target": 0}}, "false_alarm_target must be a number in (0, 1)"),
        ({"anomaly": {"false_alarm_target": 1.5}}, "false_alarm_target must be a number in (0, 1)"),
        ({"anomaly": {"false_alarm_target": True}}, "false_alarm_target must be a number in (0, 1)"),
        ({"anomaly": {"calibrated_on": 0}}, "calibrated_on must be a whole number"),
        ({"anomaly": {"calibrated_on": 2.5}}, "calibrated_on must be a whole number"),
        ({"anomaly": {"map_size": [12]}}, "map_size must be [width, height]"),
        ({"anomaly": {"map_size": [12, 0]}}, "map_size must be [width, height]"),
        ({"anomaly": {"map_size": "12x12"}}, "map_size must be [width, height]"),
        ({"task": "anomalies"}, "unknown task"),
    ],
)
def test_anomaly_manifest_refuses_what_breaks_the_contract(changes, reason):
    with pytest.raises(BundleError) as err:
        parse_manifest(manifest(**changes), where="bundle b")
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_classifier_may_not_name_an_anomaly_map_or_table():
    from bundle_helpers import demo_manifest

    for edit in ({"outputs": {"scores": "scores", "map": "m"}}, {"anomaly": {"calibrated_on": 3}}):
        data = copy.deepcopy(demo_manifest())
        data["files"] = {"model.tflite": SHA, "golden.npz": SHA}
        data.update(edit)
        with pytest.raises(BundleError, match="need task 'anomaly'"):
            parse_manifest(data)


def test_anomaly_golden_scores_have_one_column():
    data = manifest(golden={"file": "golden.npz", "scores": [[0.9, 0.1]]})
    with pytest.raises(BundleError, match="rows of 1 numbers"):
        parse_manifest(data)
    assert parse_manifest(manifest(golden={"file": "golden.npz", "scores": [[0.9]]})).golden.scores.shape == (1, 1)
