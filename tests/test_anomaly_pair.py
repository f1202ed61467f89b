"""Two models on one frame without TensorFlow: the pair's merged face, and the slot loading,
retrying and reloading each part on its own (scripted models, real config, real debouncer)."""

from __future__ import annotations

import numpy as np
import pytest
from daemon_helpers import ODD_BGR, OK_BGR, ManualClock, ScriptedAnomaly, ScriptedClassifier

from pi_inspect.edge.config import parse_config
from pi_inspect.edge.daemon.model import ModelSlot
from pi_inspect.edge.daemon.pair import ModelPair
from pi_inspect.edge.daemon.status import Faults
from pi_inspect.edge.errors import BundleError


def rgb(bgr: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.array(bgr[::-1], np.uint8), (16, 16, 1))


def test_pair_presents_both_models_labels_thresholds_alarms_and_one_scores_vector():
    pair = ModelPair({"model": ScriptedClassifier(), "anomaly": ScriptedAnomaly()})
    assert pair.labels == ("good", "error", "break", "length", "anomaly")
    assert pair.thresholds["anomaly"] == 0.5 and pair.thresholds["error"] == 0.5
    assert pair.alarms == {"error": "above", "break": "above", "length": "below", "anomaly": "above"}
    assert pair.meanings["anomaly"].alarm == "present"
    assert pair.input_size == (16, 16)
    prediction = pair.predict(rgb(ODD_BGR), with_features=False)
    assert prediction.scores.shape == (5,)
    assert prediction.scores[4] == pytest.approx(2 * 100 / 255)
    assert prediction.features is None


def test_pair_heat_map_comes_from_the_model_that_scores_the_label():
    pair = ModelPair({"model": ScriptedClassifier(), "anomaly": ScriptedAnomaly()})
    prediction = pair.predict(rgb(ODD_BGR))
    assert np.allclose(pair.heatmap(prediction, "anomaly"), 2 * 100 / 255)  # the anomaly map
    assert pair.heatmap(prediction, "error")[3, 3] == 1.0  # the classifier's own map
    with pytest.raises(BundleError):
        pair.heatmap(pair.predict(rgb(ODD_BGR), with_features=False), "anomaly")


def test_pair_info_names_both_models_and_events_name_each_labels_own_model():
    pair = ModelPair({"model": ScriptedClassifier("a" * 64), "anomaly": ScriptedAnomaly("b" * 64)})
    assert pair.info.name == "scripted+scripted-anomaly" and pair.info.version == "1+2"
    assert pair.info.sha256 not in ("a" * 64, "b" * 64) and len(pair.info.sha256) == 64
    assert pair.sha256_by_label() == {
        "good": "a" * 64, "error": "a" * 64, "break": "a" * 64, "length": "a" * 64, "anomaly": "b" * 64,
    }  # fmt: skip


def test_pair_of_different_input_sizes_is_refused_naming_both():
    with pytest.raises(BundleError) as err:
        ModelPair({"model": ScriptedClassifier(), "anomaly": ScriptedAnomaly(input_size=(32, 24))})
    assert "anomaly.bundle's model input is 32x24, model.bundle's is 16x16" in str(err.value)
    assert "\n" not in str(err.value)


def test_pair_refuses_a_label_both_models_score():
    with pytest.raises(BundleError, match="'anomaly' is scored by both model.bundle and anomaly.bundle"):
        ModelPair({"model": ScriptedAnomaly(), "anomaly": ScriptedAnomaly()})


def test_pair_cost_is_each_models_invoke_time_percentiles():
    ticks = iter([0.0, 0.004, 0.004, 0.005] * 3)  # the classifier 4 ms, the anomaly model 1 ms
    pair = ModelPair({"model": ScriptedClassifier(), "anomaly": ScriptedAnomaly()}, clock=lambda: next(ticks))
    for _ in range(3):
        pair.predict(rgb(OK_BGR), with_features=False)
    cost = pair.cost()
    assert cost["model"]["p50"] == pytest.approx(4.0) and cost["model"]["p95"] == pytest.approx(4.0)
    assert cost["anomaly"]["p50"] == pytest.approx(1.0)


# --- the slot: each part loaded, retried and reloaded on its own ----------------------------


class Loaders:
    """Loaders whose bundles a test breaks and mends."""

    def __init__(self) -> None:
        self.model_ok = True
        self.anomaly_ok = True
        self.anomaly_size = (16, 16)
        self.loaded: list = []

    def model(self, _model_config):
        if not self.model_ok:
            raise BundleError("bundle /m does not exist or is not a directory")
        self.loaded.append(ScriptedClassifier())
        return self.loaded[-1]

    def anomaly(self, _config):
        if not self.anomaly_ok:
            raise BundleError("bundle /a: model.tflite is missing")
        self.loaded.append(ScriptedAnomaly(input_size=self.anomaly_size))
        return self.loaded[-1]


def both(**model):
    return parse_config({"model": {"retry_s": 5, **model}, "anomaly": {"bundle": "/a"}})


def slot_with(loaders: Loaders, faults: Faults, clock: ManualClock) -> ModelSlot:
    return ModelSlot(loaders.model, faults, anomaly_loader=loaders.anomaly, clock=clock)


def feed(slot: ModelSlot, bgr, frames: int, start: int = 0) -> list:
    events = []
    for i in range(start, start + frames):
        with slot.lock:
            clf, debouncer = slot.classifier, slot.debouncer
            scores = dict(zip(clf.labels, clf.predict(rgb(bgr), with_features=False).scores.tolist(), strict=True))
            events += debouncer.update(i, float(i), scores)
    return events


def test_missing_anomaly_bundle_is_its_own_fault_and_the_classifier_inspects_alone():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    loaders.anomaly_ok = False
    slot = slot_with(loaders, faults, clock)
    assert slot.try_load(both()) is True
    assert faults.active() == {"anomaly_model": "no anomaly model: bundle /a: model.tflite is missing"}
    assert slot.labels == ("good", "error", "break", "length")
    assert [e.label for e in feed(slot, (255, 0, 255), 3)] == ["error"]  # inspects meanwhile
    assert not slot.retry_due()
    clock.advance(5)
    assert slot.retry_due()


def test_anomaly_model_joining_later_ends_none_of_the_classifiers_open_defects():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    loaders.anomaly_ok = False
    slot = slot_with(loaders, faults, clock)
    slot.try_load(both())
    feed(slot, (255, 0, 255), 3)
    assert slot.active == ("error",)
    first = loaders.loaded[0]
    loaders.anomaly_ok = True
    clock.advance(5)
    assert slot.try_load(both()) is True
    assert faults.active() == {}
    assert slot.labels == ("good", "error", "break", "length", "anomaly")
    assert slot.active == ("error",) and not first.closed  # the running classifier stays
    events = feed(slot, (255, 0, 255), 5, start=3)
    assert events == []  # the error defect goes on; no second start, no end
    assert isinstance(slot.classifier, ModelPair)


def test_missing_classifier_leaves_the_anomaly_model_inspecting():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    loaders.model_ok = False
    slot = slot_with(loaders, faults, clock)
    assert slot.try_load(both()) is True
    assert set(faults.active()) == {"model"}
    assert slot.labels == ("anomaly",)
    starts = [e for e in feed(slot, ODD_BGR, 3) if e.kind == "start"]
    assert [e.label for e in starts] == ["anomaly"] and starts[0].model_sha256 == "b" * 64


def test_anomaly_of_another_input_size_is_its_fault_not_the_classifiers():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    loaders.anomaly_size = (24, 24)
    slot = slot_with(loaders, faults, clock)
    slot.try_load(both())
    assert list(faults.active()) == ["anomaly_model"]
    assert "anomaly.bundle's model input is 24x24, model.bundle's is 16x16" in faults.active()["anomaly_model"]
    assert loaders.loaded[-1].closed and slot.labels == ("good", "error", "break", "length")


def test_threshold_override_for_anomaly_applies_and_waits_while_its_model_is_missing():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    loaders.anomaly_ok = False
    slot = slot_with(loaders, faults, clock)
    config = both(thresholds={"anomaly": 0.9, "error": 0.7})
    slot.try_load(config)
    assert {k: r.threshold for k, r in slot.rules().items()} == {"error": 0.7, "break": 0.5, "length": 0.5}
    loaders.anomaly_ok = True
    clock.advance(5)
    slot.try_load(config)
    assert slot.rules()["anomaly"].threshold == 0.9
    assert slot.set_thresholds({"anomaly": 0.3})["anomaly"] == 0.3


def test_reload_builds_both_or_nothing_and_closes_only_what_it_replaces():
    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    slot = slot_with(loaders, faults, clock)
    slot.try_load(both())
    running = list(loaders.loaded)
    loaders.anomaly_ok = False
    with pytest.raises(BundleError, match="model.tflite is missing"):
        slot.build(both())
    assert loaders.loaded[-1].closed  # the classifier it had loaded for the new pair
    assert not any(clf.closed for clf in running)
    loaders.anomaly_ok = True
    slot.swap(*slot.build(both()))
    assert all(clf.closed for clf in running)
    # a reload without [anomaly] goes back to the classifier alone and clears the anomaly fault
    loaders.anomaly_ok = False
    clock.advance(5)
    faults.set("anomaly_model", "no anomaly model: stale")
    slot.swap(*slot.build(parse_config({})))
    assert slot.labels == ("good", "error", "break", "length") and faults.active() == {}
    assert not slot.retry_due()


def test_each_bundle_of_the_pair_is_compared_with_the_stations_view(caplog):
    import logging

    class RotatedAnomaly(ScriptedAnomaly):
        manifest = type("M", (), {"raw": {"view": {"rotate": 90}}})()

    loaders, faults, clock = Loaders(), Faults(), ManualClock()
    slot = ModelSlot(loaders.model, faults, anomaly_loader=lambda _c: RotatedAnomaly(), clock=clock)
    with caplog.at_level(logging.WARNING, logger="pi_inspect.edge.view"):
        slot.try_load(both())
    assert "rotate 90" in caplog.text and "differs from the one the model was trained on" in caplog.text
