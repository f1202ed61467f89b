"""Label meanings belong to the data set: dataset.toml -> run -> bundle -> device decisions.

No label name is special: a column renamed from ``length`` to ``pitch_ok`` and declared "alarm
when absent" alarms exactly as ``length`` did, and a defect column *named* ``length`` declared
"alarm when present" alarms on a high score.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pi_inspect.edge.bundle import parse_manifest, read_manifest
from pi_inspect.edge.data.meanings import (
    LabelMeaning,
    declaration_path,
    meanings_for,
    read_declaration,
    write_declaration,
)
from pi_inspect.edge.decide import Debouncer, make_rules
from pi_inspect.edge.errors import BundleError, DataError


def _alarming(rules, scores: dict[str, float]) -> set[str]:
    return {label for label, rule in rules.items() if rule.alarms(scores[label])}


# -- the declaration file ------------------------------------------------------------------------


def test_declaration_round_trips_and_lives_beside_the_table(tmp_path):
    meanings = {
        "good": LabelMeaning("never", "no defect"),
        "pitch ok": LabelMeaning("absent", 'stitch pitch is 2 mm ("short")'),
        "scratch": LabelMeaning("present", "a scratch"),
    }
    path = write_declaration(tmp_path, meanings)
    assert path == tmp_path / "dataset.toml" == declaration_path(tmp_path)
    assert declaration_path(tmp_path / "labels.csv") == path
    assert read_declaration(path, list(meanings)) == meanings
    found, where = meanings_for(tmp_path, list(meanings))
    assert found == meanings and where == path


def test_data_without_a_declaration_alarms_on_every_label_when_present(tmp_path):
    found, where = meanings_for(tmp_path, ["good", "length"])
    assert where is None
    assert found == {"good": LabelMeaning("present"), "length": LabelMeaning("present")}


def test_declaration_reports_every_problem_with_its_key(tmp_path):
    (tmp_path / "dataset.toml").write_text(
        '[labels.a]\nalarm = "sometimes"\n[labels.b]\nalarm = "present"\ncolour = 1\n'
        '[labels.z]\nalarm = "never"\n'
    )
    with pytest.raises(DataError) as err:
        read_declaration(tmp_path / "dataset.toml", ["a", "b", "c"])
    text = str(err.value)
    for part in ("labels.a.alarm", "'sometimes'", "labels.b", "colour", "['c']", "['z']"):
        assert part in text, (part, text)


def test_broken_toml_names_the_file(tmp_path):
    (tmp_path / "dataset.toml").write_text("[labels.a\n")
    with pytest.raises(DataError, match="dataset.toml: not valid TOML"):
        read_declaration(tmp_path / "dataset.toml")


# -- decisions given scores ---------------------------------------------------------------------


def test_a_label_named_length_declared_present_alarms_on_a_high_score():
    meanings = {"length": LabelMeaning("present", "stitch pitch is 4 mm (wrong)")}
    rules = make_rules(["length"], {"length": 0.5}, {"length": "above"}, None, meanings)
    assert _alarming(rules, {"length": 0.9}) == {"length"}
    assert _alarming(rules, {"length": 0.1}) == set()
    assert rules["length"].condition == "length present"


def test_any_label_declared_absent_alarms_on_a_low_score_and_events_say_so():
    meanings = {
        "ok": LabelMeaning("never", "flawless"),
        "pitch_ok": LabelMeaning("absent", "stitch pitch is 2 mm"),
    }
    manifest = {
        "schema_version": 1, "task": "multilabel", "labels": ["ok", "pitch_ok"],
        "input": {"width": 8, "height": 8}, "files": {"m.tflite": "0" * 64}, "model": "m.tflite",
        "meanings": {k: v.to_dict() for k, v in meanings.items()},
    }
    m = parse_manifest(manifest)
    assert m.alarms == {"pitch_ok": "below"} and m.meanings == meanings
    rules = make_rules(m.labels, m.thresholds, m.alarms, None, m.meanings)
    assert set(rules) == {"pitch_ok"}  # "ok" never alarms, whatever its name
    deb = Debouncer(rules, k=2, n=3, m=2)
    events = []
    for i, score in enumerate([0.9, 0.1, 0.2, 0.1, 0.9, 0.9]):
        events += deb.update(i, float(i), {"ok": 0.5, "pitch_ok": score})
        if i == 2:
            assert deb.active_conditions == ("pitch_ok absent",)
    assert [e.kind for e in events] == ["start", "end"]
    for e in events:
        assert e.condition == "pitch_ok absent" and e.meaning == "stitch pitch is 2 mm"
        assert e.to_dict()["condition"] == "pitch_ok absent"


def test_a_bundle_without_meanings_keeps_its_alarm_directions(tmp_path):
    import json
    import shutil

    bundle = tmp_path / "older"  # the demo bundle as written before meanings were declared
    shutil.copytree(Path(__file__).parents[1] / "edge" / "assets" / "demo_bundle", bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["meanings"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    demo = read_manifest(bundle)
    assert demo.alarms == {"error": "above", "break": "above", "length": "below"}
    assert demo.meanings["length"] == LabelMeaning("absent", "")
    assert demo.meanings["good"].alarm == "never"
    rules = make_rules(demo.labels, demo.thresholds, demo.alarms, None, demo.meanings)
    low = {"good": 0.0, "error": 0.0, "break": 0.0, "length": 0.05}
    assert _alarming(rules, low) == {"length"}
    assert rules["length"].condition == "length absent"


def test_a_manifest_with_a_bad_declaration_is_refused_in_one_line():
    manifest = {
        "schema_version": 1, "task": "multilabel", "labels": ["a"],
        "input": {"width": 8, "height": 8}, "files": {"m.tflite": "0" * 64}, "model": "m.tflite",
        "meanings": {"a": {"alarm": "loud"}},
    }
    with pytest.raises(BundleError, match="labels.a.alarm"):
        parse_manifest(manifest)


def test_home_assistant_discovery_names_alarm_conditions_not_labels():
    from pi_inspect.edge.mqtt.discovery import discovery_messages
    from pi_inspect.edge.mqtt.topics import Topics

    meanings = {
        "good": LabelMeaning("never", "flawless"),
        "length": LabelMeaning("absent", "stitch pitch is 2 mm"),
    }
    messages = discovery_messages(Topics("pi-inspect", "line-3"), "homeassistant",
                                  ("good", "length"), "1", meanings)
    names = [p["name"] for t, p in messages if "/binary_sensor/" in t]
    assert names == ["length absent: stitch pitch is 2 mm"]


# -- the declaration flows run -> bundle -> daemon decisions (tiny real training) -------------


def _rename_column(src: Path, dst: Path, old: str, new: str, *, invert: bool = False) -> None:
    dst.mkdir()
    os.symlink(src / "images", dst / "images")
    with open(src / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index(old)
    rows[0][col] = new
    if invert:
        for row in rows[1:]:
            row[col] = "False" if row[col] == "True" else "True"
    with open(dst / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _train(data: Path, out: Path) -> None:
    from pi_inspect.edge.cli import main

    args = ["train", "--data", str(data), "--arch", "cnn", "--size", "32", "--epochs", "1",
            "--batch-size", "16", "--augment", "none", "--seed", "3", "--out", str(out)]
    assert main(args) == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from pi_inspect.edge.cli import main

    root = tmp_path_factory.mktemp("meanings")
    seams = root / "seams"
    assert main(["synth", "--out", str(seams), "--count", "48", "--size", "32x32",
                 "--seed", "5", "--workers", "1"]) == 0
    assert read_declaration(seams / "dataset.toml")["length"].alarm == "absent"
    renamed = root / "renamed"
    _rename_column(seams, renamed, "length", "pitch_ok")
    declared = read_declaration(seams / "dataset.toml")
    declared["pitch_ok"] = LabelMeaning("absent", "stitch pitch is 2 mm")
    del declared["length"]
    write_declaration(renamed, {k: declared[k] for k in ("good", "error", "break", "pitch_ok")})
    defect = root / "defect"  # the 4 mm pitch, as a defect column that happens to be "length"
    _rename_column(seams, defect, "length", "length", invert=True)
    write_declaration(defect, {**{k: declared[k] for k in ("good", "error", "break")},
                               "length": LabelMeaning("present", "stitch pitch is 4 mm")})
    runs = {}
    for name, data in (("seams", seams), ("renamed", renamed), ("defect", defect)):
        runs[name] = root / f"run-{name}"
        _train(data, runs[name])
    return root, runs


def test_renamed_pitch_column_declared_absent_alarms_exactly_like_length(trained):
    from pi_inspect.edge.cli import main
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.train.runs import load_run

    root, runs = trained
    a, b = load_run(runs["seams"]), load_run(runs["renamed"])
    assert (runs["renamed"] / "dataset.toml").is_file()  # train copied the declaration
    assert b.info["alarms"] == {"error": "above", "break": "above", "pitch_ok": "below"}
    assert b.info["meanings"]["pitch_ok"] == {"alarm": "absent", "meaning": "stitch pitch is 2 mm"}
    assert a.info["alarms"] == {"error": "above", "break": "above", "length": "below"}

    bundle = root / "bundle-renamed"
    assert main(["convert", str(runs["renamed"]), "--out", str(bundle), "--calib-count", "16",
                 "--test-count", "16", "--allow-drop", "--no-reference"]) == 0
    manifest = read_manifest(bundle)
    assert manifest.meanings["pitch_ok"] == LabelMeaning("absent", "stitch pitch is 2 mm")
    assert json.loads((bundle / "manifest.json").read_text())["alarms"]["pitch_ok"] == "below"

    ds = read_dataset(root / "seams")
    x, _ = load_images(ds.paths, (32, 32))
    scores_a = np.asarray(a.model(x.astype(np.float32)))
    scores_b = np.asarray(b.model(x.astype(np.float32)))
    np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)  # same data, same seed, same model
    # Thresholds at the scores' median: about half the frames alarm, so the check has teeth.
    cut = [float(np.median(scores_a[:, i])) for i in range(4)]
    rules_a = make_rules(a.labels, dict(zip(a.labels, cut, strict=True)), a.info["alarms"],
                         None, a.meanings)
    rules_b = make_rules(manifest.labels, dict(zip(manifest.labels, cut, strict=True)),
                         manifest.alarms, None, manifest.meanings)
    rename = {"pitch_ok": "length"}
    decided = 0
    for sa, sb in zip(scores_a, scores_b, strict=True):
        got_a = _alarming(rules_a, dict(zip(a.labels, map(float, sa), strict=True)))
        got_b = _alarming(rules_b, dict(zip(manifest.labels, map(float, sb), strict=True)))
        assert {rename.get(x, x) for x in got_b} == got_a
        decided += "length" in got_a
    assert 0 < decided < len(scores_a)

    assert main(["evaluate", str(runs["renamed"]), "--data", str(root / "renamed")]) == 0
    metrics = json.loads((runs["renamed"] / "eval" / "metrics.json").read_text())
    assert metrics["alarms"]["pitch_ok"]["condition"] == "pitch_ok absent"
    assert "good" not in metrics["alarms"]


def test_defect_column_named_length_declared_present_alarms_on_a_high_score(trained):
    from pi_inspect.edge.data.images import load_images
    from pi_inspect.edge.data.table import read_dataset
    from pi_inspect.train.runs import load_run

    root, runs = trained
    run = load_run(runs["defect"])
    assert run.info["alarms"]["length"] == "above"
    assert run.meanings["length"] == LabelMeaning("present", "stitch pitch is 4 mm")
    ds = read_dataset(root / "defect")
    x, _ = load_images(ds.paths, (32, 32))
    scores = np.asarray(run.model(x.astype(np.float32)))[:, run.labels.index("length")]
    cut = float(np.median(scores))
    rules = make_rules(run.labels, {"length": cut}, run.info["alarms"], None, run.meanings)
    for s in scores:
        assert (("length" in _alarming(rules, {**dict.fromkeys(run.labels, 0.0), "length": float(s)}))
                == (s > cut))


def test_labelling_tool_declares_the_labels_it_is_given(tmp_path):
    import argparse

    from pi_inspect.edge.commands.label import _declare
    from pi_inspect.edge.errors import ConfigError

    args = argparse.Namespace(out=tmp_path / "labelled", absent="pitch_ok", never="good",
                              meaning=["pitch_ok=stitch pitch is 2 mm"])
    _declare(args, ("good", "error", "pitch_ok"))
    assert read_declaration(tmp_path / "labelled" / "dataset.toml") == {
        "good": LabelMeaning("never", ""),
        "error": LabelMeaning("present", ""),
        "pitch_ok": LabelMeaning("absent", "stitch pitch is 2 mm"),
    }
    args.absent = "pitch_ok"
    assert _declare(args, ("good", "error", "pitch_ok")).endswith("(kept)")  # never overwritten
    with pytest.raises(ConfigError, match="unknown label"):
        _declare(argparse.Namespace(out=tmp_path / "x", absent="lenght", never="", meaning=[]),
                 ("good", "length"))


def test_split_keeps_the_declaration_beside_its_tables(tmp_path):
    from pi_inspect.edge.cli import main
    from pi_inspect.edge.synth.dataset import generate_dataset

    generate_dataset(tmp_path / "seams", 24, seed=2, size=(32, 32), workers=1)
    assert main(["split", str(tmp_path / "seams"), "--out", str(tmp_path / "split")]) == 0
    found, where = meanings_for(tmp_path / "split" / "train.csv",
                                ["good", "error", "break", "length"])
    assert where == tmp_path / "split" / "dataset.toml" and found["length"].alarm == "absent"


def test_evaluate_scores_the_alarm_condition_not_the_label():
    from pi_inspect.train.metrics import alarm_metrics

    truth = np.array([[True, True], [True, False], [False, False], [True, True]])
    pred = np.array([[True, True], [True, True], [False, False], [True, False]])
    meanings = {"ok": LabelMeaning("never"), "pitch_ok": LabelMeaning("absent", "2 mm")}
    got = alarm_metrics(truth, pred, ["ok", "pitch_ok"], meanings)
    assert list(got) == ["pitch_ok"] and got["pitch_ok"]["condition"] == "pitch_ok absent"
    # absent: truth rows 1, 2 (support 2); predicted absent: rows 2, 3 -> one right of each
    assert got["pitch_ok"]["support"] == 2
    assert got["pitch_ok"]["precision"] == 0.5 and got["pitch_ok"]["recall"] == 0.5


def test_the_demo_bundle_declares_the_seams_meanings():
    from pi_inspect.edge.synth.dataset import MEANINGS

    demo = read_manifest(Path(__file__).parents[1] / "edge" / "assets" / "demo_bundle")
    assert {k: (m.alarm, m.meaning) for k, m in demo.meanings.items()} == MEANINGS
