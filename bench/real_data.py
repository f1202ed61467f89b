"""The default commands on real images a package ships: scikit-learn's handwritten digits.

Two protocols, each against the baseline a user would try first, on the same split:

- classification: ``pi-inspect train`` (defaults) on class folders, ``convert`` to int8, top-1
  through the edge runtime on the held-out half; baseline an SVM on the raw pixels;
- one-class novelty (the protocol of one-class MNIST papers): each digit in turn is the good
  part; ``pi-inspect train --task anomaly`` (defaults) on its training images only, ``convert``,
  and the image AUROC of that digit's test images against every other digit's, through the
  edge runtime; baseline a one-class SVM on the raw pixels. A run that train or convert refuses
  ("did not learn", or the pseudo-defect gate) is reported as refused, with its reason.

Images are the 8x8 digits scaled to ``--size`` px (nearest neighbour), grey as BGR. The same
script runs on a user's folder of class folders (``--folders DIR``: classification only).

    python bench/real_data.py [--size 32] [--digits 0,1,...] [--out results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    return train_test_split(d.images, d.target, test_size=0.5, stratify=d.target, random_state=seed)


def to_bgr(images: np.ndarray, size: int) -> np.ndarray:
    import cv2

    grey = (images / 16.0 * 255.0).clip(0, 255).astype(np.uint8)
    big = [cv2.resize(g, (size, size), interpolation=cv2.INTER_NEAREST) for g in grey]
    return np.stack([cv2.cvtColor(b, cv2.COLOR_GRAY2BGR) for b in big])


def write_images(folder: Path, images: np.ndarray, names: list[str]) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images, names, strict=True):
        cv2.imwrite(str(folder / name), img)


def cli(*args: str) -> tuple[int, str]:
    """``pi-inspect ARGS`` in this process: (exit code, the error line if any)."""
    from contextlib import redirect_stderr

    from pi_inspect.edge.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(list(args))
    lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("pi-inspect ")]
    return code, (lines[-1] if lines else "")


def bundle_outputs(bundle: Path, images: np.ndarray) -> np.ndarray:
    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.edge.runtime import load_classifier

    with load_classifier(bundle) as model:
        size = tuple(model.input_size)
        return np.stack([model.predict(prepare(img, size)).scores for img in images])


def classification(work: Path, size: int, seed: int) -> dict:
    from sklearn.svm import SVC

    x_train, x_test, y_train, y_test = digits_split(seed)
    svm = SVC(gamma=0.001).fit(x_train.reshape(len(x_train), -1), y_train)
    svm_top1 = float((svm.predict(x_test.reshape(len(x_test), -1)) == y_test).mean())
    bgr_train = to_bgr(x_train, size)
    for digit in range(10):
        picked = np.flatnonzero(y_train == digit)
        write_images(work / "folders" / f"digit{digit}", bgr_train[picked],
                     [f"{i:04d}.png" for i in picked])
    started = time.monotonic()
    code, line = cli("train", "--data", str(work / "folders"), "--size", str(size),
                     "--out", str(work / "clf-run"))
    train_s = time.monotonic() - started
    result = {"svm_top1": round(svm_top1, 4), "train_seconds": round(train_s, 1), "test": len(y_test)}
    if code != 0:
        return {**result, "refused": line}
    code, line = cli("convert", str(work / "clf-run"), "--out", str(work / "clf-bundle"))
    if code != 0:
        return {**result, "refused": line}
    scores = bundle_outputs(work / "clf-bundle", to_bgr(x_test, size))
    labels = json.loads((work / "clf-bundle" / "manifest.json").read_text())["labels"]
    predicted = np.array([int(labels[k].removeprefix("digit")) for k in scores.argmax(axis=1)])
    return {**result, "int8_top1": round(float((predicted == y_test).mean()), 4)}


def embedding_knn_auroc(run: Path, good: np.ndarray, test: np.ndarray, outlier: np.ndarray) -> float:
    """Tried, not shipped: the float model's pooled trunk features, cosine distance of each
    test image to its nearest good training image (a PatchCore-like global score)."""
    import keras
    from sklearn.metrics import roc_auc_score

    from pi_inspect.edge.preprocess import prepare
    from pi_inspect.train.runs import load_run

    model = load_run(run).model
    pooled = keras.layers.GlobalAveragePooling2D()(model.get_layer("features").output)
    trunk = keras.Model(model.input, pooled)
    size = tuple(int(v) for v in model.input.shape[1:3])

    def embed(images: np.ndarray) -> np.ndarray:
        rgb = np.stack([prepare(img, size) for img in images]).astype(np.float32)
        e = trunk.predict(rgb, verbose=0)
        return e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-9)

    distance = 1.0 - (embed(test) @ embed(good).T).max(axis=1)
    return float(roc_auc_score(outlier, distance))


def one_class(work: Path, size: int, seed: int, digit: int) -> dict:
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import OneClassSVM

    x_train, x_test, y_train, y_test = digits_split(seed)
    good = x_train[y_train == digit]
    outlier = (y_test != digit).astype(int)
    ocsvm = OneClassSVM(gamma="scale", nu=0.1).fit(good.reshape(len(good), -1))
    baseline = roc_auc_score(outlier, -ocsvm.decision_function(x_test.reshape(len(x_test), -1)))
    folder = work / f"good{digit}"
    write_images(folder, to_bgr(good, size), [f"{i:04d}.png" for i in range(len(good))])
    run, bundle = work / f"anomaly{digit}", work / f"anomaly{digit}-bundle"
    started = time.monotonic()
    code, line = cli("train", "--task", "anomaly", "--data", str(folder), "--size", str(size),
                     "--out", str(run))
    result = {"digit": digit, "good_images": len(good), "ocsvm_auroc": round(float(baseline), 4),
              "train_seconds": round(time.monotonic() - started, 1)}
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    result["pseudo_defect_auroc"] = (info.get("validation") or {}).get("pseudo_defect_auroc")
    if (run / "model.keras").exists():
        result["embedding_knn_auroc"] = round(
            embedding_knn_auroc(run, to_bgr(good, size), to_bgr(x_test, size), outlier), 4
        )
    if code != 0:
        return {**result, "refused": line}
    code, line = cli("convert", str(run), "--out", str(bundle))
    if code != 0:
        return {**result, "refused": line}
    scores = bundle_outputs(bundle, to_bgr(x_test, size))[:, 0]
    return {**result, "int8_auroc": round(float(roc_auc_score(outlier, scores)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9", help="one-class digits to run")
    parser.add_argument("--skip-classification", action="store_true")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    report: dict = {"cpu": cpu_name(), "size": args.size, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="pi-inspect-real-") as tmp:
        work = Path(tmp)
        if not args.skip_classification:
            report["classification"] = classification(work, args.size, args.seed)
            print("classification:", json.dumps(report["classification"]), flush=True)
        rows = []
        for digit in (int(d) for d in args.digits.split(",") if d):
            rows.append(one_class(work, args.size, args.seed, digit))
            print("one-class:", json.dumps(rows[-1]), flush=True)
        report["one_class"] = rows
    scored = [r["int8_auroc"] for r in rows if "int8_auroc" in r]
    report["one_class_mean_int8_auroc"] = round(float(np.mean(scored)), 4) if scored else None
    report["one_class_mean_ocsvm_auroc"] = (
        round(float(np.mean([r["ocsvm_auroc"] for r in rows])), 4) if rows else None
    )
    report["one_class_refused"] = [r["digit"] for r in rows if "refused" in r]
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
