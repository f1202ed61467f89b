"""Bad bundles against the real runtime: the daemon keeps its model or shows amber and retries;
every command that reads a bundle answers a bad one with one line and exit 1."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest
from bundle_helpers import DEMO, demo_manifest, make_bundle, write_raw_manifest
from daemon_helpers import OK_BGR, RecordingOutput, script, wait_until, write_video
from gpiozero.pins.mock import MockFactory

from pi_inspect.edge.bundle import sha256_file
from pi_inspect.edge.cli import main
from pi_inspect.edge.config import load_config
from pi_inspect.edge.daemon import Daemon

AMBER = 22
DEMO_SHA = sha256_file(DEMO / "model.tflite")


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def truncate_model(bundle: Path) -> Path:
    """Cut the model in half and rewrite the hashes: a bad convert or tool, not a bad copy."""
    model = bundle / "model.tflite"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    write_raw_manifest(bundle, json.loads((bundle / "manifest.json").read_text()))
    return bundle


def mismatch_golden(bundle: Path) -> Path:
    data = json.loads((bundle / "manifest.json").read_text())
    data["golden"]["scores"][1][0] = 0.2  # the model says 0.996
    write_raw_manifest(bundle, data)
    return bundle


def nest_manifest(bundle: Path) -> Path:
    (bundle / "manifest.json").write_text(
        '{"schema_version": 1, "labels": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    return bundle


def point(link: Path, target: Path) -> None:
    tmp = link.with_name("current.tmp")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def station(tmp_path: Path, bundle: Path, factory) -> tuple[Daemon, RecordingOutput]:
    """A daemon from a real config file whose model is ``models/current`` -> ``bundle``."""
    models = tmp_path / "models"
    models.mkdir()
    point(models / "current", bundle)
    video = write_video(tmp_path / "line.avi", script((OK_BGR, 5)))
    path = tmp_path / "pi.toml"
    path.write_text(
        f'[source]\nuri = "{video}"\nloop = true\n[gpio]\npin_factory = "mock"\n'
        f'[model]\nbundle = "{models / "current"}"\nretry_s = 0.2\nnum_threads = 1\n'
        f"[snapshots]\nenabled = false\n[stdout]\nenabled = false\n"
    )
    out = RecordingOutput()
    daemon = Daemon(load_config(path), config_path=path, outputs=[out], pin_factory=factory)
    return daemon, out


def test_sighup_to_a_bundle_with_a_truncated_model_keeps_the_old_model_running(
    tmp_path: Path, factory, caplog
):
    good = make_bundle(tmp_path / "src", "seam", 1)
    daemon, out = station(tmp_path, good, factory)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(out.results) > 3, timeout=30)
        bad = truncate_model(make_bundle(tmp_path / "src", "seam", 2))
        point(tmp_path / "models" / "current", bad)
        with caplog.at_level(logging.ERROR):
            daemon.request_reload()
            assert wait_until(lambda: "reload refused" in caplog.text, timeout=30)
        seen = len(out.results)
        assert wait_until(lambda: len(out.results) > seen + 3, timeout=30)  # still inspecting
    finally:
        stop.set()
        thread.join(30)
    refused = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0]
    assert "cannot load the model" in refused[0]
    assert out.states[-1].model.sha256 == DEMO_SHA
    assert all(s.verdict != "fault" for s in out.states)
    assert True not in [s.state for s in factory.pin(AMBER).states]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (truncate_model, "cannot load the model"),
        (mismatch_golden, "golden set mismatch"),
        (nest_manifest, "nested too deeply"),
    ],
)
def test_start_with_a_bad_bundle_shows_amber_and_loads_a_good_one_when_it_appears(
    tmp_path: Path, factory, damage, reason
):
    bad = damage(make_bundle(tmp_path / "src", "seam", "bad"))
    daemon, out = station(tmp_path, bad, factory)
    stop = threading.Event()
    thread = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: any(s.verdict == "fault" for s in out.states), timeout=30)
        assert wait_until(lambda: factory.pin(AMBER).state, timeout=10)
        point(tmp_path / "models" / "current", make_bundle(tmp_path / "src", "seam", "good"))
        assert wait_until(lambda: len(out.results) > 3, timeout=30)  # the retry picked it up
    finally:
        stop.set()
        thread.join(30)
    fault = next(s.fault for s in out.states if s.verdict == "fault")
    assert fault.startswith("no model:") and reason in fault and "\n" not in fault
    assert out.states[-1].verdict != "fault" and out.states[-1].model.sha256 == DEMO_SHA


# --- commands that read a bundle: one line, exit 1 ---------------------------------------------


def _one_line_refusal(capsys, argv: list[str], reason: str) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert err.count("\n") == 0 and reason in err, err


@pytest.mark.parametrize("command", ["deploy", "bench"])
def test_a_manifest_nested_100000_deep_is_refused_in_one_line(tmp_path, capsys, command):
    bundle = nest_manifest(make_bundle(tmp_path))
    argv = (
        ["deploy", "--no-reload", str(bundle), str(tmp_path)]
        if command == "deploy"
        else ["bench", str(bundle)]
    )
    _one_line_refusal(capsys, argv, "nested too deeply")


@pytest.mark.parametrize("command", ["deploy", "bench"])
def test_an_input_width_of_1e999_is_refused_in_one_line(tmp_path, capsys, command):
    bundle = make_bundle(tmp_path)
    text = (bundle / "manifest.json").read_text().replace('"width": 96', '"width": 1e999')
    (bundle / "manifest.json").write_text(text)
    argv = (
        ["deploy", "--no-reload", str(bundle), str(tmp_path)]
        if command == "deploy"
        else ["bench", str(bundle)]
    )
    _one_line_refusal(capsys, argv, "input 'width' must be a whole number 1..4096, not inf")


def test_bench_on_a_broken_model_is_one_line(tmp_path, capsys):
    bundle = truncate_model(make_bundle(tmp_path))
    _one_line_refusal(
        capsys, ["bench", "--runs", "5", str(bundle)], "the runtime cannot run model.tflite"
    )


def test_bench_does_not_follow_a_reference_model_out_of_the_bundle(tmp_path, capsys):
    def outside(data):
        data["reference_model"] = "../../../etc/passwd"

    bundle = make_bundle(tmp_path, edit=outside)
    _one_line_refusal(capsys, ["bench", str(bundle)], "must be a plain file name inside the bundle")


def test_a_bundle_without_a_golden_set_loads_with_one_warning(tmp_path, caplog):
    from pi_inspect.edge.runtime import load_classifier

    def older(data):
        data["golden"] = None
        data["files"].pop("golden.npz")

    bundle = make_bundle(tmp_path, edit=older)
    with caplog.at_level(logging.WARNING), load_classifier(bundle, num_threads=1) as clf:
        assert clf.manifest.golden is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "has no golden set" in warnings[0]


def test_the_demo_bundle_passes_its_own_golden_set():
    from pi_inspect.edge.runtime import load_classifier, run_golden

    manifest = demo_manifest()
    assert manifest["golden"]["file"] == "golden.npz" and len(manifest["golden"]["scores"]) == 6
    with load_classifier(num_threads=1) as clf:
        assert run_golden(clf) <= clf.manifest.golden.tolerance


# --- convert: labels refused before any work, golden inputs chosen to cover every output -------


@pytest.mark.parametrize(
    "label", ["a#b", "a+b", "a/b", "$SYS", "", " padded", "nul\0", "..", "x" * 65]
)
def test_convert_refuses_labels_that_cannot_be_topic_levels_or_file_names(label):
    from pi_inspect.convert.bundle_writer import check_label_names
    from pi_inspect.edge.errors import ConversionError

    with pytest.raises(ConversionError, match="must be usable as an MQTT topic level") as info:
        check_label_names(["good", label])
    assert "\n" not in str(info.value)


def test_convert_accepts_ordinary_labels():
    from pi_inspect.convert.bundle_writer import check_label_names

    check_label_names(["good", "error", "break", "length", "Naht gerissen", "faden-2.5mm"])


def test_golden_inputs_cover_the_top_and_bottom_of_every_label():
    import numpy as np

    from pi_inspect.convert.bundle_writer import pick_golden

    scores = np.array([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.0, 0.2]])
    # label 0: highest 1, lowest 4; label 1: highest 2, lowest 1 (taken); then the first ones
    assert pick_golden(scores, count=6) == [1, 4, 2, 0, 3]
    assert pick_golden(scores, count=2) == [1, 4]
