"""The heat-map head in a manifest: float32 arrays as JSON and the dense layers Grad-CAM needs.

Split from ``pi_inspect.edge.manifest`` (which re-exports every name): a classifier bundle carries its head
in float so the Pi computes Grad-CAM in numpy.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pi_inspect.edge.errors import BundleError

MAX_DIM = 1 << 16  # any one dimension of head weights


def _show(value: object, width: int = 60) -> str:
    """``repr`` of a value from the manifest, cut short: a reason stays one readable line."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: shape plus base64 of its little-endian bytes."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32", "b64": base64.b64encode(a.tobytes()).decode()}


def decode_array(d: Any, what: str = "head weights") -> np.ndarray:
    if not isinstance(d, dict):
        raise BundleError(f"{what} are not an object with shape, dtype and b64")
    if d.get("dtype") != "float32":
        raise BundleError(f"{what} have dtype {_show(d.get('dtype'))}, expected float32")
    shape_in, b64 = d.get("shape"), d.get("b64")
    if not isinstance(b64, str) or not isinstance(shape_in, list) or not 1 <= len(shape_in) <= 4:
        raise BundleError(f"{what} need a 'shape' list of 1 to 4 sizes and a 'b64' string")
    if not all(_is_int(s) and 0 < s <= MAX_DIM for s in shape_in):
        raise BundleError(f"{what}: shape {_show(shape_in)} must hold whole numbers 1..{MAX_DIM}")
    shape = tuple(shape_in)
    want = math.prod(shape)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError(f"{what}: 'b64' is not base64") from None
    if len(raw) != 4 * want:
        raise BundleError(f"{what} hold {len(raw) // 4} values, shape {shape} needs {want}")
    arr = np.frombuffer(raw, dtype="<f4")
    if not np.isfinite(arr).all():
        raise BundleError(f"{what} hold NaN or infinite values")
    return arr.reshape(shape).astype(np.float32)


@dataclass(frozen=True)
class DenseLayer:
    """One dense layer of the classifier head, kept in float for on-device Grad-CAM."""

    name: str
    kernel: np.ndarray  # (in, out)
    bias: np.ndarray  # (out,)
    activation: Literal["relu", "linear"]


@dataclass(frozen=True)
class HeadSpec:
    """What the edge needs for heat maps: GAP over the feature map, then these dense layers."""

    layers: tuple[DenseLayer, ...]
    output_activation: Literal["sigmoid", "softmax"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": "gap",
            "output_activation": self.output_activation,
            "layers": [
                {
                    "name": lyr.name,
                    "activation": lyr.activation,
                    "kernel": encode_array(lyr.kernel),
                    "bias": encode_array(lyr.bias),
                }
                for lyr in self.layers
            ],
        }

    @classmethod
    def from_dict(cls, d: Any) -> HeadSpec:
        if not isinstance(d, dict):
            raise BundleError("heat-map head is not an object")
        if d.get("pool") != "gap":
            raise BundleError(f"heat-map head pool {_show(d.get('pool'))} is not supported (only 'gap')")
        raw_layers = d.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise BundleError("heat-map head has no dense layer")
        layers = []
        for i, x in enumerate(raw_layers):
            if not isinstance(x, dict) or x.get("activation") not in ("relu", "linear"):
                raise BundleError(f"heat-map head layer {i} needs activation 'relu' or 'linear'")
            kernel = decode_array(x.get("kernel"), f"heat-map head layer {i} kernel")
            bias = decode_array(x.get("bias"), f"heat-map head layer {i} bias")
            if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
                raise BundleError(f"heat-map head layer {i}: kernel {kernel.shape} and bias {bias.shape} do not fit")
            if layers and layers[-1].kernel.shape[1] != kernel.shape[0]:
                raise BundleError(f"heat-map head layer {i} takes {kernel.shape[0]} inputs, the layer before gives {layers[-1].kernel.shape[1]}")
            layers.append(DenseLayer(str(x.get("name", f"dense_{i}")), kernel, bias, x["activation"]))
        if d.get("output_activation") not in ("sigmoid", "softmax"):
            raise BundleError("heat-map head output_activation must be 'sigmoid' or 'softmax'")
        return cls(layers=tuple(layers), output_activation=d["output_activation"])
