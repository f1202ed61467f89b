"""Run inside the numpy<2 tflite-runtime venv: print a bundle's scores for saved images as JSON.

Usage: python tflite_runtime_scores.py BUNDLE IMAGES.npy

That venv holds tflite-runtime and numpy<2 only: pi-inspect's edge package is loaded from this
checkout in place, as ``pi_inspect.edge`` (its folders sit at the top of the repository).
"""

import json
import sys
import types
from pathlib import Path

import numpy as np

_namespace = types.ModuleType("pi_inspect")
_namespace.__path__ = [str(Path(__file__).resolve().parents[1])]
sys.modules.setdefault("pi_inspect", _namespace)

from pi_inspect.edge.runtime import load_classifier  # noqa: E402

if __name__ == "__main__":
    images = np.load(sys.argv[2])
    with load_classifier(sys.argv[1], backend="tflite_runtime") as clf:
        preds = [clf.predict(img) for img in images]
        print(
            json.dumps(
                {
                    "backend": clf.backend,
                    "numpy": np.__version__,
                    "scores": [p.scores.tolist() for p in preds],
                    "features": [p.features.tolist() for p in preds[:2]],
                }
            )
        )
