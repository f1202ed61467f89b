"""Checks run after every conversion: integer-only ops, and float-vs-converted parity.

The TFLiteConverter silently leaves ops in float when it cannot quantize them; a parity check
on held-out images catches a model that quantized but lost accuracy. Either one stops the
conversion unless the user explicitly allows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pi_inspect.edge.errors import ConversionError

FLOAT_TYPES = {"float32", "float16", "float64"}


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    inputs: tuple[str, ...]  # dtype names of the op's input tensors
    outputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()

    @property
    def is_float(self) -> bool:
        return bool(FLOAT_TYPES & {*self.inputs, *self.outputs})

    def __str__(self) -> str:
        return f"{self.index:3d} {self.name:<24} in={','.join(self.inputs)} out={','.join(self.outputs)}"


def list_ops(model_bytes: bytes) -> list[OpInfo]:
    """Every op of the model with its tensor types, before any delegate rewrites the graph."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=model_bytes,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()

    def details(indices) -> list[dict]:
        return [interp._get_tensor_details(int(i), 0) for i in indices if i >= 0]

    ops = []
    for op in interp._get_ops_details():
        ins, outs = details(op["inputs"]), details(op["outputs"])
        ops.append(OpInfo(
            op["index"], op["op_name"],
            tuple(np.dtype(t["dtype"]).name for t in ins),
            tuple(np.dtype(t["dtype"]).name for t in outs),
            tuple(tuple(int(v) for v in t["shape"]) for t in ins),
            tuple(tuple(int(v) for v in t["shape"]) for t in outs),
        ))
    return ops


def count_macs(ops: list[OpInfo]) -> int:
    """Multiply-accumulates of the conv and dense ops (the ones that dominate latency)."""
    total = 0
    for op in ops:
        if not op.output_shapes or len(op.input_shapes) < 2:
            continue
        out, weights = op.output_shapes[0], op.input_shapes[1]
        if op.name == "CONV_2D":  # weights (oc, kh, kw, ic)
            total += int(np.prod(out)) * int(np.prod(weights[1:]))
        elif op.name == "DEPTHWISE_CONV_2D":  # weights (1, kh, kw, oc)
            total += int(np.prod(out)) * int(weights[1] * weights[2])
        elif op.name == "FULLY_CONNECTED":  # weights (out, in)
            total += int(np.prod(out)) * int(weights[-1])
    return total


def float_ops(ops: list[OpInfo]) -> list[OpInfo]:
    """Ops that compute in float. Only a QUANTIZE at the input or DEQUANTIZE at an output may."""
    bad = []
    for op in ops:
        if not op.is_float:
            continue
        if op.name == "QUANTIZE" and set(op.outputs) <= {"int8", "uint8"}:
            continue  # float input -> integer: the input quantize
        if op.name == "DEQUANTIZE" and not (FLOAT_TYPES & set(op.inputs)):
            continue  # integer -> float: an output dequantize
        bad.append(op)
    return bad


def check_integer_only(ops: list[OpInfo]) -> None:
    bad = float_ops(ops)
    if bad:
        names = sorted({op.name for op in bad})
        raise ConversionError(
            f"int8 conversion left {len(bad)} op(s) in float ({', '.join(names)}); "
            "the model would run in float on the Pi. Replace those layers or use --quant float16"
        )


def decisions(scores: np.ndarray, task: str, thresholds: np.ndarray) -> np.ndarray:
    """Boolean decisions (n, k): score >= threshold per label, or the arg-max class."""
    if task == "multiclass":
        out = np.zeros_like(scores, dtype=bool)
        out[np.arange(len(scores)), scores.argmax(axis=1)] = True
        return out
    from pi_inspect.train.metrics import (
        apply_thresholds,  # the rule evaluate uses, so parity agrees with it
    )

    return apply_thresholds(scores, thresholds)


@dataclass
class ParityReport:
    labels: list[str]
    count: int
    float_accuracy: dict[str, float]  # percent
    converted_accuracy: dict[str, float]  # percent
    drop_points: dict[str, float]  # float - converted, in accuracy points
    mean_abs_diff: float
    max_abs_diff: float
    agreement: float  # share of images where every decision agrees, percent
    tolerance_points: float
    heatmap_pearson: dict[str, float] | None = None

    @property
    def worst_drop(self) -> float:
        return max(self.drop_points.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        lines = [f"{'label':<10} {'float %':>8} {'tflite %':>9} {'drop':>6}"]
        for lbl in self.labels:
            lines.append(
                f"{lbl:<10} {self.float_accuracy[lbl]:8.2f} {self.converted_accuracy[lbl]:9.2f} "
                f"{self.drop_points[lbl]:6.2f}"
            )
        lines.append(
            f"scores: mean |diff| {self.mean_abs_diff:.4f}, max {self.max_abs_diff:.4f}; "
            f"decisions agree on {self.agreement:.2f}% of {self.count} images"
        )
        if self.heatmap_pearson:
            hp = ", ".join(f"{k} {v:.3f}" for k, v in self.heatmap_pearson.items())
            lines.append(f"heat maps (Pearson, on-device vs Keras Grad-CAM): {hp}")
        return "\n".join(lines)


def parity_report(
    labels: list[str],
    task: str,
    y_true: np.ndarray,
    float_scores: np.ndarray,
    converted_scores: np.ndarray,
    thresholds: dict[str, float],
    tolerance_points: float = 1.0,
) -> ParityReport:
    """Compare float and converted scores on the same held-out images."""
    thr = np.array([thresholds.get(lbl, 0.5) for lbl in labels], dtype=np.float32)
    truth = y_true >= 0.5
    d_float = decisions(float_scores, task, thr)
    d_conv = decisions(converted_scores, task, thr)
    acc_f = (d_float == truth).mean(axis=0) * 100.0
    acc_c = (d_conv == truth).mean(axis=0) * 100.0
    diff = np.abs(float_scores - converted_scores)
    return ParityReport(
        labels=list(labels),
        count=int(len(y_true)),
        float_accuracy={lbl: round(float(a), 3) for lbl, a in zip(labels, acc_f, strict=True)},
        converted_accuracy={lbl: round(float(a), 3) for lbl, a in zip(labels, acc_c, strict=True)},
        drop_points={lbl: round(float(a - b), 3) for lbl, a, b in zip(labels, acc_f, acc_c, strict=True)},
        mean_abs_diff=float(diff.mean()),
        max_abs_diff=float(diff.max()),
        agreement=float((d_float == d_conv).all(axis=1).mean() * 100.0),
        tolerance_points=float(tolerance_points),
    )


def check_parity(report: ParityReport, allow_drop: bool) -> None:
    over = {k: v for k, v in report.drop_points.items() if v > report.tolerance_points}
    if over and not allow_drop:
        worst = max(over, key=over.get)
        raise ConversionError(
            f"converted model loses {over[worst]:.2f} accuracy points on '{worst}' "
            f"(tolerance {report.tolerance_points:g}); not writing the bundle. "
            "Use more/other --calib images, --quant float16, or --allow-drop"
        )


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps; nan when either is constant."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")
