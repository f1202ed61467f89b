"""The anomaly score is the mean of the map's few highest cells: one hot cell (a speck, a noisy
cell) cannot reach a flaw's score alone, the layer saves and loads, and int8 keeps it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def _map(cells: dict[tuple[int, int], float], side: int = 12) -> np.ndarray:
    m = np.full((1, side, side, 1), 0.05, np.float32)
    for (y, x), v in cells.items():
        m[0, y, x, 0] = v
    return m


def test_one_hot_cell_scores_a_quarter_of_a_four_cell_flaw_of_the_same_height():
    from pi_inspect.train.layers import TopMean

    layer = TopMean(4)
    speck = float(layer(_map({(3, 3): 1.0}))[0, 0])
    flaw = float(layer(_map({(3, 3): 1.0, (3, 4): 1.0, (4, 3): 1.0, (4, 4): 1.0}))[0, 0])
    assert flaw == pytest.approx(1.0)
    assert speck == pytest.approx((1.0 + 3 * 0.05) / 4)


def test_score_averages_one_cell_on_small_maps_and_a_36th_of_larger_ones():
    from pi_inspect.train.anomaly.model import score_cells

    assert score_cells((4, 4)) == 1  # the 32 px digits: the peak, as before
    assert score_cells((6, 6)) == 1
    assert score_cells((8, 8)) == 2
    assert score_cells((12, 12)) == 4  # the 96 px default
    assert score_cells((28, 28)) == 22


def test_model_score_is_the_mean_of_its_maps_top_cells_and_the_training_twin_the_peak(tmp_path):
    import keras

    import pi_inspect.train.layers  # noqa: F401  (registers TopMean, as loading a run does)
    from pi_inspect.train.anomaly.model import MAP, SCORE, build_anomaly_model

    keras.utils.set_random_seed(3)
    model = build_anomaly_model((96, 96))
    twin = build_anomaly_model((96, 96), peak=True)
    twin.set_weights(model.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (3, 96, 96, 3)).astype(np.float32)
    out, peak = model.predict(x, verbose=0), twin.predict(x, verbose=0)
    cells = np.sort(out[MAP].reshape(3, -1), axis=1)
    np.testing.assert_allclose(out[SCORE][:, 0], cells[:, -4:].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(peak[SCORE][:, 0], cells[:, -1], rtol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)[SCORE], out[SCORE], rtol=1e-5)


def test_int8_score_is_the_mean_of_the_int8_maps_top_cells():
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from pi_inspect.convert.quantize import convert_model
    from pi_inspect.convert.verify import check_integer_only, list_ops
    from pi_inspect.train.anomaly.model import MAP, SCORE, build_anomaly_model

    keras.utils.set_random_seed(5)
    model = build_anomaly_model((96, 96))
    head = model.get_layer("map_logits")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 6.0, bias - 2.0])  # a map that varies widely, as a trained one does
    x = np.random.default_rng(1).uniform(0, 255, (16, 96, 96, 3)).astype(np.float32)
    blob = convert_model(model, "int8", x, "uint8", False, {SCORE: model.output[SCORE], MAP: model.output[MAP]})
    ops = list_ops(blob)
    assert "TOPK_V2" in {op.name for op in ops}
    check_integer_only(ops)
    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    outs = {o["name"]: o for o in interp.get_output_details()}
    score, amap = sorted(outs.values(), key=lambda o: int(np.prod(o["shape"])))
    interp.set_tensor(inp["index"], x[:1].astype(np.uint8))
    interp.invoke()

    def real(o):
        scale, zero = o["quantization"]
        return (interp.get_tensor(o["index"]).astype(np.float32) - zero) * scale

    cells = np.sort(real(amap).ravel())
    step = score["quantization"][0]
    assert cells[-1] - cells[-4:].mean() > 4 * step  # the peak alone would fail the next line
    assert float(real(score).ravel()[0]) == pytest.approx(cells[-4:].mean(), abs=2 * step)
