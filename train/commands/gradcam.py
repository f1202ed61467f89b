"""``pi-inspect gradcam RUN IMAGES --out DIR``: heat maps, overlays, a montage, the pointing game.

Each image gets ``<name>_heat.png`` (one colour per alarming label: error blue, break green,
length red) and ``<name>_overlay.png``. If IMAGES is a labelled data set with a boxes.csv (as
``pi-inspect synth`` writes), the pointing game is reported: per defect label, the share of
images with that defect whose heat-map peak lies inside the defect's bounding box.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="training run directory")
    parser.add_argument(
        "images", metavar="IMAGES", help="image file/folder, or a labelled data set"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for heat maps and montage.png"
    )
    parser.add_argument("--boxes", help="boxes.csv for the pointing game (default: beside IMAGES)")
    parser.add_argument("--limit", type=int, default=0, help="heat-map images to write (0 = all)")
    parser.add_argument("--montage", type=int, default=24, help="images in montage.png")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="pointing-game slack in input pixels (default: the standard 15 px at 224 px, scaled)",
    )


def pointing_game(run, image_set, boxes_path: Path, images, tolerance: float) -> dict:
    """Per label with boxes: hits / trials over images that truly have that defect."""
    import cv2
    import numpy as np

    from pi_inspect.train.gradcam import gradcam
    from pi_inspect.train.inputs import read_boxes
    from pi_inspect.train.metrics import peak_in_box, pointing_game

    boxes = read_boxes(boxes_path)
    ds = image_set.dataset
    labels = run.labels
    alarms = run.info.get("alarms", {})
    size = run.input_size
    result = {}
    for j, label in enumerate(labels):
        rows = [i for i, p in enumerate(ds.paths) if ds.y[i, j] > 0.5 and (str(p), label) in boxes]
        if not rows:
            continue
        sign = -1.0 if alarms.get(label) == "below" else 1.0
        heats = gradcam(run.model, images[rows], j, sign)
        hits = []
        for heat, i in zip(heats, rows, strict=True):
            original = cv2.imread(str(ds.paths[i]), cv2.IMREAD_UNCHANGED)
            oh, ow = original.shape[:2]
            sx, sy = size[0] / ow, size[1] / oh
            scaled = [
                (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
                for x0, y0, x1, y1 in boxes[(str(ds.paths[i]), label)]
            ]
            hits.append(any(peak_in_box(heat, b, size, tolerance) for b in scaled))
        result[label] = {
            "hits": int(np.sum(hits)),
            "trials": len(hits),
            "score": pointing_game(hits),
        }
    return result


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from pi_inspect.train.gradcam import colour_for, colour_heat, gradcam, overlay, upsample
    from pi_inspect.train.inputs import find_boxes, read_image_set
    from pi_inspect.train.pipeline import decode_paths
    from pi_inspect.train.plots import montage
    from pi_inspect.train.runs import load_run, write_json

    run_ = load_run(args.run)
    image_set = read_image_set(args.images, run_.task)
    images, paths, keep = decode_paths(image_set.paths, run_.input_size)
    if image_set.dataset is not None:
        image_set.dataset = image_set.dataset.subset(keep)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores = run_.model.predict(images.astype(np.float32), verbose=0, batch_size=32)
    labels = run_.labels
    alarms = run_.info.get("alarms", {label: "above" for label in labels})
    thresholds = run_.threshold_list()
    heat_labels = [j for j, label in enumerate(labels) if label in alarms]
    n = len(images) if args.limit <= 0 else min(args.limit, len(images))
    heats = {
        j: gradcam(run_.model, images[:n], j, -1.0 if alarms[labels[j]] == "below" else 1.0)
        for j in heat_labels
    }
    tiles, captions = [], []
    for i in range(n):
        active = [
            j for j in heat_labels if _alarming(scores[i, j], thresholds[j], alarms[labels[j]])
        ]
        if run_.task == "multiclass":
            active = [int(np.argmax(scores[i]))] if int(np.argmax(scores[i])) in heat_labels else []
        maps = [upsample(heats[j][i], run_.input_size) for j in active]
        colours = [colour_for(labels[j], j) for j in active]
        heat_rgb = colour_heat(maps, colours) if maps else np.zeros_like(images[i])
        blended = overlay(images[i], heat_rgb)
        stem = Path(paths[i]).stem
        cv2.imwrite(str(out / f"{stem}_heat.png"), heat_rgb[:, :, ::-1])
        cv2.imwrite(str(out / f"{stem}_overlay.png"), blended[:, :, ::-1])
        if len(tiles) < args.montage:
            tiles.append(blended)
            captions.append(f"{stem}\n" + (",".join(labels[j] for j in active) or "no alarm"))
    if tiles:
        meanings = run_.meanings
        legend = {
            (meanings[labels[j]].condition(labels[j]) or labels[j]): colour_for(labels[j], j)
            for j in heat_labels
        }
        montage(tiles, captions, out / "montage.png", legend=legend)
    report: dict = {"images": n, "out": str(out.absolute())}
    boxes_path = find_boxes(image_set, args.boxes)
    if boxes_path is not None and image_set.dataset is not None:
        tolerance = (
            standard_tolerance(run_.input_size) if args.tolerance is None else args.tolerance
        )
        report["pointing_game_tolerance_px"] = tolerance
        report["pointing_game"] = pointing_game(run_, image_set, boxes_path, images, tolerance)
        for label, r in report["pointing_game"].items():
            print(
                f"pointing game {label}: {r['score']:.1%} ({r['hits']}/{r['trials']}, "
                f"tolerance {tolerance:.1f} px)"
            )
    write_json(out / "gradcam.json", report)
    print(json.dumps({"images": n, "out": report["out"]}))
    return 0


def standard_tolerance(input_size: tuple[int, int]) -> float:
    """Zhang et al.'s pointing game allows 15 px on 224 px images: the same share of our width."""
    return 15.0 / 224.0 * min(input_size)


def _alarming(score: float, threshold: float, direction: str) -> bool:
    return score < threshold if direction == "below" else score >= threshold
