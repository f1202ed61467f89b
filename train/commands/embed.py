"""``pi-inspect embed RUN IMAGES --out INDEX.npz``: embeddings of a folder or data set.

On a labelled data set it also prints the top-5 precision of nearest-neighbour retrieval.
"""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="training run directory")
    parser.add_argument("images", metavar="IMAGES", help="image folder or labelled data set")
    parser.add_argument(
        "--out", required=True, metavar="INDEX", help="output .npz (paths + embeddings)"
    )
    parser.add_argument("-k", type=int, default=5, help="neighbours for the precision report")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.train.embed import embed_images, nearest, save_index, top_k_precision
    from pi_inspect.train.inputs import read_image_set
    from pi_inspect.train.pipeline import decode_paths
    from pi_inspect.train.runs import load_run

    run_ = load_run(args.run)
    image_set = read_image_set(args.images, run_.task)
    images, paths, keep = decode_paths(image_set.paths, run_.input_size)
    vectors = embed_images(run_.model, images)
    out = save_index(args.out, paths, vectors, str(run_.path))
    report = {"images": len(paths), "dim": int(vectors.shape[1]), "index": str(out)}
    if image_set.dataset is not None and len(paths) > args.k:
        neighbours, _ = nearest(vectors, vectors, args.k, exclude_self=True)
        y = image_set.dataset.y[keep]
        report[f"top{args.k}_precision"] = top_k_precision(y, neighbours, run_.task == "multilabel")
    print(json.dumps(report))
    return 0
