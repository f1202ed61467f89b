"""``pi-inspect similar RUN QUERY --index INDEX.npz``: the k images nearest to a query image."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="training run directory")
    parser.add_argument("query", metavar="QUERY", help="query image")
    parser.add_argument("--index", required=True, help="index written by 'pi-inspect embed'")
    parser.add_argument("-k", type=int, default=5, help="how many nearest images to list")


def run(args: argparse.Namespace) -> int:
    from pi_inspect.train.embed import embed_images, load_index, nearest
    from pi_inspect.train.pipeline import decode_paths
    from pi_inspect.train.runs import load_run

    run_ = load_run(args.run)
    paths, vectors = load_index(args.index)
    image, _, _ = decode_paths([args.query], run_.input_size)
    query = embed_images(run_.model, image)
    if query.shape[1] != vectors.shape[1]:
        from pi_inspect.edge.errors import DataError

        raise DataError(
            f"{args.index}: {vectors.shape[1]}-d embeddings, this run makes {query.shape[1]}-d"
        )
    order, sims = nearest(vectors, query, args.k)
    print("rank\tcosine\timage")
    for rank, (i, s) in enumerate(zip(order[0], sims[0], strict=True), start=1):
        print(f"{rank}\t{s:.4f}\t{paths[i]}")
    return 0
