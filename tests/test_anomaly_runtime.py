"""An anomaly bundle in the runtime: its score, its map as the heat map, the checks at load.

The first tests run the real tiny int8 bundle (TensorFlow builds it, LiteRT runs it); the
others give ``Classifier`` an interpreter double with the output shapes under test, so they
need neither TensorFlow nor a model file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_helpers import anomaly_manifest, bright_patch

from pi_inspect.edge.errors import BundleError
from pi_inspect.edge.manifest import parse_manifest
from pi_inspect.edge.runtime import Classifier, Prediction, load_classifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_anomaly_bundle_loads_runs_its_golden_set_and_scores_a_bright_patch(anomaly_bundle):
    with load_classifier(anomaly_bundle) as clf:  # hashes, signature, shapes, golden set
        assert clf.task == "anomaly"
        assert clf.labels == ("anomaly",)
        assert clf.thresholds == {"anomaly": 0.5}
        assert clf.alarms == {"anomaly": "above"}
        assert clf.has_heatmaps
        good = clf.predict(bright_patch(cells=0), with_features=False)
        bad = clf.predict(bright_patch(at=(3, 4)), with_features=False)
        assert good.scores.shape == bad.scores.shape == (1,)
        assert good.scores[0] < 0.05 < 0.95 < bad.scores[0]
        assert good.features is None


def test_anomaly_map_marks_the_cells_where_the_patch_is(anomaly_bundle):
    with load_classifier(anomaly_bundle) as clf:
        prediction = clf.predict(bright_patch(at=(3, 4), cells=2))
        heat = clf.heatmap(prediction, "anomaly")
        assert heat.shape == (12, 12)
        hot = {(int(r), int(c)) for r, c in zip(*np.nonzero(heat > 0.5), strict=True)}
        assert hot == {(4, 3), (4, 4), (5, 3), (5, 4)}  # (row, column) of the 2x2 white cells


def test_good_frame_gives_a_dark_map_not_one_stretched_to_full_scale(anomaly_bundle):
    with load_classifier(anomaly_bundle) as clf:
        # grey 150: every cell sigmoid(20 * (150/255 - 0.7)) = 0.096, faint and even; a map
        # normalized per frame would show it at full scale (or all black)
        heat = clf.heatmap(clf.predict(bright_patch(cells=0, base=150)), "anomaly")
        assert 0.05 < heat.min() <= heat.max() < 0.15
        assert clf.heatmap(clf.predict(bright_patch(cells=0, base=60)), "anomaly").max() < 0.01


# --- the runtime's checks, with an interpreter double --------------------------------------


class FakeInterpreter:
    """The parts of a LiteRT interpreter ``Classifier`` uses; outputs quantized uint8."""

    def __init__(self, map_shape: tuple[int, ...], map_q: np.ndarray | None = None) -> None:
        self._details = {
            "in": {"index": 0, "dtype": np.uint8, "quantization": (1.0, 0), "shape": (1, 96, 96, 3)},
            "anomaly_score": {"index": 1, "dtype": np.uint8, "quantization": (1 / 256, 0), "shape": (1, 1)},
            "anomaly_map": {"index": 2, "dtype": np.uint8, "quantization": (1 / 256, 0), "shape": map_shape},
        }
        self._tensors = {1: np.array([[200]], np.uint8), 2: map_q}

    def get_signature_list(self):
        return {"serving_default": {}}

    def get_signature_runner(self, _name):
        return self

    def get_input_details(self):
        return {"pixels": self._details["in"]}

    def get_output_details(self):
        return {k: v for k, v in self._details.items() if k != "in"}

    def set_tensor(self, _index, _value):
        pass

    def invoke(self):
        pass

    def get_tensor(self, index):
        return self._tensors[index]


def classifier(map_shape, map_q=None, **manifest_changes) -> Classifier:
    data = anomaly_manifest()
    data.update(schema_version=1, files={"model.tflite": "0" * 64}, **manifest_changes)
    return Classifier(parse_manifest(data), Path("b"), FakeInterpreter(map_shape, map_q), "fake")


@pytest.mark.parametrize("shape", [(1, 12), (1, 12, 12, 1), (2, 12, 12), (1, 0, 12)])
def test_map_that_is_not_one_2d_map_is_refused_at_load(shape):
    with pytest.raises(BundleError, match=r"anomaly map 'anomaly_map' has shape .* expected \(1, height, width\)") as err:
        classifier(shape)
    assert "\n" not in str(err.value)


def test_map_of_another_size_than_the_manifest_says_is_refused():
    with pytest.raises(BundleError, match="anomaly map is 8x6, the manifest says 12x12"):
        classifier((1, 6, 8))


def test_missing_map_output_is_refused():
    with pytest.raises(BundleError, match="no output named 'the_map'"):
        classifier((1, 12, 12), outputs={"scores": "anomaly_score", "map": "the_map"})


def test_heatmap_is_the_dequantized_map_unchanged():
    q = np.zeros((1, 12, 12), np.uint8)
    q[0, 2, 3] = 64  # 0.25: a faint cell stays faint
    clf = classifier((1, 12, 12), q)
    prediction = clf.predict(np.zeros((96, 96, 3), np.uint8))
    assert prediction.scores.tolist() == [200 / 256]
    heat = clf.heatmap(prediction, "anomaly")
    assert heat[2, 3] == pytest.approx(0.25)
    assert heat.sum() == pytest.approx(0.25)
    with pytest.raises(BundleError):
        clf.heatmap(Prediction(prediction.scores, None), "anomaly")


def test_deploy_checks_an_anomaly_bundle_in_a_child_and_switches_its_own_models_directory(
    anomaly_bundle, tmp_path
):
    from pi_inspect.edge.deploy import check_in_child, deploy_local

    check_in_child(anomaly_bundle)  # loads it and runs its golden set; raises when refused
    models = tmp_path / "anomaly-models"  # beside the classifier's models directory
    models.mkdir()
    result = deploy_local(anomaly_bundle, models)
    assert result.current.startswith("seam-anomaly-tiny-")
    with load_classifier(models / "current") as clf:
        assert clf.task == "anomaly"
