"""Run inside the numpy<2 tflite-runtime venv: print a bundle's scores for saved images as JSON.

Usage: python tflite_runtime_scores.py BUNDLE IMAGES.npy   (with the repo root on PYTHONPATH)
"""

import json
import sys

import numpy as np

from pi_inspect.edge.runtime import load_classifier

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
