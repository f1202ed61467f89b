"""Data sets that would only fail late, or with a traceback, fail first in one line."""

from __future__ import annotations

import numpy as np
import pytest

from pi_inspect.edge.cli import main
from pi_inspect.edge.data.meanings import read_declaration
from pi_inspect.edge.data.table import read_class_folders, read_table
from pi_inspect.edge.errors import DataError


def table(tmp_path, labels: list[str]):
    import cv2

    (tmp_path / "images").mkdir()
    rows = ["name," + ",".join(labels)]
    for i in range(4):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
        rows.append(f"images/{i}.png," + ",".join(str((i + k) % 2) for k in range(len(labels))))
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("label", ["line/3", "seam#2", "+", "$SYS"])
def test_a_label_that_cannot_be_a_topic_level_is_refused_when_the_data_is_read(tmp_path, label):
    with pytest.raises(DataError, match="MQTT topic"):
        read_table(table(tmp_path, ["good", label]))


def test_a_class_folder_that_cannot_be_a_topic_level_is_refused(tmp_path):
    for name in ("good", "$bad"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.png").write_bytes(b"x")
    with pytest.raises(DataError, match="'\\$bad'"):
        read_class_folders(tmp_path)


def test_a_dataset_toml_nested_100000_deep_is_one_line_not_a_traceback(tmp_path, capsys):
    decl = tmp_path / "dataset.toml"
    decl.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match="nested too deeply"):
        read_declaration(decl)
    csv = table(tmp_path, ["good", "error"])
    code = main(["train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "nested too deeply" in err and "Traceback" not in err


def test_train_refuses_a_label_with_a_slash_before_training(tmp_path, capsys):
    csv = table(tmp_path, ["good", "line/3"])
    code = main(["train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "'line/3'" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.keras").exists()
