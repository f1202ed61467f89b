"""Grad-CAM on the device, without gradients from the runtime.

The converted model returns its last convolutional feature map ``A`` (h, w, c) next to the
scores; the manifest carries the float head (global average pooling, then dense layers). Since
the head after ``A`` is small, its gradient is computed here in numpy:

    z = mean_ij A_ijc;  hidden: h = relu(z W + b) ...;  y = logits = h W_out + b_out
    alpha_c = mean_ij dy/dA_ijc = (dy/dz_c) / (h w)
    heat = relu(sum_c alpha_c A_ijc), scaled to [0, 1]

As in the Grad-CAM paper, y is the class score before the sigmoid/softmax (for a sigmoid
output the map is the same after scaling; for softmax it does not mix in the other classes).

For a pooling -> dense head this equals CAM (the class's weights on the feature map); with
hidden dense layers the ReLU masks of this very input are back-propagated.
"""

from __future__ import annotations

import numpy as np

from pi_inspect.edge.bundle import HeadSpec


def head_forward(z: np.ndarray, head: HeadSpec) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits for pooled features ``z`` (c,), plus the hidden pre-activations for backprop."""
    h = z.astype(np.float32)
    pre: list[np.ndarray] = []
    for layer in head.layers[:-1]:
        a = h @ layer.kernel + layer.bias
        pre.append(a)
        h = np.maximum(a, 0.0) if layer.activation == "relu" else a
    last = head.layers[-1]
    return h @ last.kernel + last.bias, pre


def score_gradient(features: np.ndarray, head: HeadSpec, index: int) -> np.ndarray:
    """d logit[index] / d pooled feature, shape (c,)."""
    z = features.reshape(-1, features.shape[-1]).mean(axis=0)
    _, pre = head_forward(z, head)
    g = head.layers[-1].kernel[:, index].astype(np.float32)
    for layer, a in zip(reversed(head.layers[:-1]), reversed(pre), strict=True):
        if layer.activation == "relu":
            g = g * (a > 0)
        g = layer.kernel @ g
    return g.astype(np.float32)


def gradcam(
    features: np.ndarray, head: HeadSpec, index: int, sign: float = 1.0
) -> np.ndarray:
    """Heat map (h, w) in [0, 1] for output ``index``; ``sign=-1`` explains a *low* score.

    A label whose alarm is 'below' (stitch ``length``: the alarm is a low 2 mm score) is
    explained by the negative gradient, i.e. what pushes its score down.
    """
    h, w, _ = features.shape
    alpha = sign * score_gradient(features, head, index) / float(h * w)
    cam = np.maximum(features @ alpha, 0.0)
    peak = float(cam.max())
    if peak <= 0.0 or not np.isfinite(peak):
        return np.zeros((h, w), np.float32)
    return (cam / peak).astype(np.float32)
