"""A bad or missing anomaly bundle is a fault like a bad classifier bundle, and the classifier
inspects meanwhile; a reload that names a bad one is refused. Real demo bundle in LiteRT, real
frames, MockFactory pins; no TensorFlow needed."""

from __future__ import annotations

import threading
from pathlib import Path

from bundle_helpers import make_bundle
from daemon_helpers import RecordingOutput, write_seam_frames

from pi_inspect.edge.config import load_config, parse_config
from pi_inspect.edge.daemon import Daemon

AMBER = 22


def run_beside(tmp_path: Path, anomaly: str, pins) -> tuple:
    frames = write_seam_frames(tmp_path / "frames")
    out = RecordingOutput()
    config = parse_config(
        {
            "source": {"kind": "folder", "uri": str(frames)},
            "model": {"num_threads": 1},
            "anomaly": {"bundle": anomaly},
            "snapshots": {"enabled": False},
            "stdout": {"enabled": False},
            "output": {"stats_interval_s": 0.05},
        }
    )
    summary = Daemon(config, pin_factory=pins, outputs=[out]).run(threading.Event())
    return summary, out


def test_missing_anomaly_bundle_is_an_amber_fault_while_the_classifier_inspects(tmp_path, pins):
    summary, out = run_beside(tmp_path, str(tmp_path / "nowhere"), pins)
    assert [(e.label, e.first_frame, e.last_frame) for e in summary.events] == [("error", 20, 25)]
    faults = {s.fault for s in out.states if s.fault}
    assert faults == {f"no anomaly model: bundle {tmp_path / 'nowhere'} does not exist or is not a directory"}
    assert list(summary.faults) == [next(iter(faults))]  # started once, not once per retry
    assert True in [s.state for s in pins.pin(AMBER).states]
    assert "anomaly" not in out.states[-1].model.labels
    costs = [s.extra["model_invoke_ms"] for s in out.stats]
    assert costs and all(set(c) == {"model"} for c in costs)  # only the classifier ran


def test_classifier_bundle_named_as_the_anomaly_bundle_is_refused(tmp_path, pins):
    other = make_bundle(tmp_path, name="second-classifier")
    summary, out = run_beside(tmp_path, str(other), pins)
    assert any(
        s.fault and "is a multilabel bundle, not an anomaly bundle" in s.fault for s in out.states
    )
    assert [e.label for e in summary.events] == ["error"]


def test_reload_naming_a_bad_anomaly_bundle_is_refused_and_the_classifier_runs_on(tmp_path, pins):
    path = tmp_path / "pi-inspect.toml"
    path.write_text('[model]\nnum_threads = 1\n[gpio]\nenabled = false\n')
    daemon = Daemon(load_config(path), config_path=path, outputs=[], pin_factory=pins)
    assert daemon.reload() is True
    labels = daemon.labels
    path.write_text(f'[model]\nnum_threads = 1\n[anomaly]\nbundle = "{tmp_path / "nowhere"}"\n')
    assert daemon.reload() is False
    assert daemon.labels == labels and "anomaly" not in labels
    assert daemon.config.anomaly.bundle is None  # the refused config is not in force


def test_doctor_checks_the_anomaly_bundle_when_one_is_configured(tmp_path):
    from pi_inspect.edge.doctor import collect

    plain = [name for name, _check in collect(parse_config({}), "pi-inspect")]
    assert "anomaly bundle" not in plain
    config = parse_config({"anomaly": {"bundle": str(tmp_path / "nowhere")}})
    checks = dict(collect(config, "pi-inspect"))
    result = checks["anomaly bundle"]()
    assert result.name == "anomaly bundle" and not result.ok
    assert "does not exist" in result.detail


def test_preflight_expands_the_anomaly_bundle_path():
    from pi_inspect.edge.preflight import problems

    found = problems(parse_config({"anomaly": {"bundle": "~nosuchuserhere/bundle"}}))
    assert any(p.startswith("anomaly.bundle:") for p in found)
