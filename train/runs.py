"""The run directory: what a training run leaves behind and how to load it back.

RUN/model.keras (best checkpoint), run.json (arch, task, labels, input size, label meanings and alarms, data hash,
splits, config, versions, seed), dataset.toml (the data set's declaration, if it had one),
history.csv, curves.png; evaluate adds thresholds.json and eval/.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pi_inspect.edge.data.meanings import LabelMeaning, from_alarms, parse_meanings
from pi_inspect.edge.errors import DataError
from pi_inspect.edge.files import follow_umask

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
THRESHOLDS_FILE = "thresholds.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
EVAL_DIR = "eval"
FEATURE_LAYER = "features"



@dataclass
class Run:
    """A loaded run: the Keras model, run.json as a dict, and per-label thresholds."""

    model: Any
    info: dict[str, Any]
    thresholds: dict[str, float] = field(default_factory=dict)
    path: Path = Path(".")

    @property
    def labels(self) -> list[str]:
        return list(self.info["labels"])

    @property
    def meanings(self) -> dict[str, LabelMeaning]:
        """Per label: when it alarms and what it means (as the data set declared)."""
        declared = self.info.get("meanings")
        if declared:
            return parse_meanings(declared, self.labels, f"{self.path}/{RUN_FILE}")
        return from_alarms(self.labels, self.info.get("alarms", {}))

    @property
    def task(self) -> str:
        return str(self.info["task"])

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height)."""
        w, h = self.info["input_size"]
        return int(w), int(h)

    def threshold_list(self) -> list[float]:
        """Thresholds in label order (0.5 where evaluate has not tuned one yet)."""
        return [float(self.thresholds.get(label, 0.5)) for label in self.labels]


def versions() -> dict[str, str]:
    """Versions of everything that changes a trained model's numbers."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pi_inspect.edge import __version__

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "pi-inspect": __version__,
    }


def data_hash(paths: Iterable[str | os.PathLike], y: Iterable[Iterable[float]]) -> str:
    """sha256 over every image's bytes and label row, in order: same hash = same data."""
    digest = hashlib.sha256()
    for path, row in zip(paths, y, strict=True):
        digest.update(Path(path).name.encode())
        digest.update(bytes(int(bool(v)) for v in row))
        try:
            digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    follow_umask(fd)  # mkstemp makes it 0600; the output is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """run.json of a run directory (raises DataError if it is not one)."""
    path = Path(run_dir) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{run_dir}: not a training run (no {RUN_FILE})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg})") from exc


def read_thresholds(run_dir: str | os.PathLike) -> dict[str, float]:
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return {}
    return {str(k): float(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def split_path(run: Run, name: str) -> Path:
    """A split CSV recorded in run.json; if the run directory was moved, the copy inside it."""
    recorded = Path(run.info["splits"][name])
    if recorded.exists():  # a CSV, or a folder given as --valid
        return recorded
    moved = run.path / recorded.name
    if moved.is_file():
        return moved
    raise DataError(f"{run.path}: the {name} split {recorded} is gone")


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load RUN/model.keras (uncompiled), run.json and thresholds.json (if evaluated)."""
    import keras

    import pi_inspect.train.layers  # noqa: F401  (registers the anomaly score's layer)
    import pi_inspect.train.losses  # noqa: F401  (registers the custom loss so old checkpoints load)

    folder = Path(run_dir)
    info = read_info(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise DataError(f"{folder}: no {MODEL_FILE} (did training finish an epoch?)")
    model = keras.models.load_model(model_path, compile=False)
    return Run(model=model, info=info, thresholds=read_thresholds(folder), path=folder)
