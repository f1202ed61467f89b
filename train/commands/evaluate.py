"""``pi-inspect evaluate RUN --data TEST``: per-label metrics with thresholds tuned on validation;
for an anomaly run, AUROC per defect kind, false alarms, the pointing game and a histogram."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="training run directory")
    parser.add_argument(
        "--data", required=True, metavar="TEST", help="held-out test set (same formats as train)"
    )
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="also score blurred, sharpened, brighter and darker copies",
    )
    parser.add_argument(
        "--objective",
        default="accuracy",
        choices=["accuracy", "f1", "balanced"],
        help="what the per-label thresholds maximise on the validation split",
    )
    parser.add_argument("--list-size", type=int, default=50, help="rows in uncertain.csv")
    parser.add_argument(
        "--compare",
        default=None,
        metavar="OLD_RUN",
        help="classifier runs: also score the same test set with an earlier run (the one "
        "--init started from, say) and show both per alarm condition",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="anomaly runs: score the run's int8 bundle through the edge runtime instead of "
        "the float model",
    )


def format_summary(result: dict) -> str:
    """A short human table of the headline numbers."""
    lines = []
    if result["task"] == "multilabel":
        lines.append(
            f"{'label':<10} {'thr':>5} {'acc':>7} {'prec':>7} {'recall':>7} {'f1':>7} {'support':>7}"
        )
        for label, m in result["per_label"].items():
            lines.append(
                f"{label:<10} {result['thresholds'][label]:>5.2f} {m['accuracy']:>7.1%} {m['precision']:>7.1%} "
                f"{m['recall']:>7.1%} {m['f1']:>7.1%} {m['support']:>7d}"
            )
        lines.append(f"exact match {result['exact_match']:.1%} on {result['count']} images")
    else:
        lines.append(
            f"top-1 {result['top1']:.1%}  top-5 {result['top5']:.1%} on {result['count']} images"
        )
    if result.get("alarms"):
        lines.append("alarm conditions (as the data set declares them):")
        lines.append(f"  {'condition':<20} {'prec':>7} {'recall':>7} {'support':>7}  meaning")
        for m in result["alarms"].values():
            lines.append(
                f"  {m['condition']:<20} {m['precision']:>7.1%} {m['recall']:>7.1%} "
                f"{m['support']:>7d}  {m['meaning']}"
            )
    lines.append(f"misclassified: {result['misclassified']}")
    if "robustness_markdown" in result:
        lines.append(result["robustness_markdown"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pi_inspect.train.evaluate import evaluate
    from pi_inspect.train.inputs import read_labelled
    from pi_inspect.train.pipeline import decode
    from pi_inspect.train.runs import EVAL_DIR, load_run, split_path

    run_ = load_run(args.run)
    if run_.task == "anomaly":
        from pi_inspect.train.anomaly.evaluate import evaluate_anomaly, format_anomaly

        result = evaluate_anomaly(
            run_, args.data, with_robustness=args.robustness, bundle=args.bundle
        )
        print(format_anomaly(result))
        print(f"written: {run_.path / EVAL_DIR}/anomaly.json, histogram.png")
        return 0
    test = read_labelled(args.data, run_.task)
    if list(test.labels) != run_.labels:
        from pi_inspect.edge.errors import DataError

        raise DataError(
            f"{args.data}: labels {list(test.labels)} differ from the run's {run_.labels}"
        )
    valid = read_labelled(split_path(run_, "valid"), run_.task)
    test_d = decode(test, run_.input_size)
    valid_d = decode(valid, run_.input_size)
    result = evaluate(
        run_,
        test_d.images,
        test_d.y,
        test_d.paths,
        valid_d.images,
        valid_d.y,
        objective=args.objective,
        with_robustness=args.robustness,
        list_size=args.list_size,
    )
    print(format_summary(result))
    if args.compare:
        from pi_inspect.train.evaluate import compare_alarms, format_comparison
        from pi_inspect.train.runs import write_json

        old = load_run(args.compare)
        old_images = decode(test, old.input_size).images
        rows = compare_alarms(result, old, old_images, test_d.y, list(test.labels))
        print(format_comparison(rows, str(args.compare)))
        write_json(run_.path / EVAL_DIR / "comparison.json", {"against": str(args.compare), "rows": rows})
    print(f"written: {run_.path / 'thresholds.json'}, {run_.path / EVAL_DIR}/")
    return 0
