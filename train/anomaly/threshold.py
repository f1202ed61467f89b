"""The anomaly threshold: the score that at most the false-alarm target of good images exceed.

A quantile can be read off the held-out good scores only where they reach it: 0.5 % of 45
images is less than one image, and their highest score is then about the 98th percentile, so a
frame of the same line alarms two to four times as often as the target says. Where the sample
cannot show the quantile, the threshold is the upper prediction bound for one more good score
instead: mean + t(1 - target, n - 1) * sd * sqrt(1 + 1/n) of the scores' logits (a normal tail,
Student's t for an estimated spread), never below the highest held-out score. The logit is the
global score's (``pi_inspect.edge.global_score``): one score scale on both sides.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from pi_inspect.edge.global_score import logit, sigmoid


def t_quantile(p: float, dof: int) -> float:
    """Student's t quantile by its Cornish-Fisher expansion in 1/dof (within 2 % from 5 degrees of freedom)."""
    z = NormalDist().inv_cdf(p)
    v = float(max(dof, 1))
    z3, z5, z7 = z**3, z**5, z**7
    return (
        z
        + (z3 + z) / (4 * v)
        + (5 * z5 + 16 * z3 + 3 * z) / (96 * v**2)
        + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v**3)
    )


def prediction_bound(good_scores: np.ndarray, false_alarms: float) -> float:
    """The score one more good image exceeds with probability ``false_alarms``, were the
    logits of good scores normal (mean and spread estimated from ``good_scores``)."""
    logits = logit(good_scores)
    n = len(logits)
    if n < 3:
        return float(np.max(good_scores))
    spread = float(logits.std(ddof=1)) * math.sqrt(1.0 + 1.0 / n)
    bound = float(logits.mean()) + t_quantile(1.0 - false_alarms, n - 1) * spread
    return sigmoid(bound)


def calibrate(good_scores: np.ndarray, false_alarms: float) -> float:
    """The threshold that at most ``false_alarms`` of good scores exceed (strictly above it
    alarms): the empirical quantile where the sample reaches it, never below the highest score
    at that rank; else the prediction bound, never below the highest score."""
    s = np.sort(np.asarray(good_scores, dtype=np.float64))
    allowed = int(np.floor(false_alarms * len(s)))
    if allowed >= 1:
        return float(s[len(s) - 1 - allowed])
    return max(float(s[-1]), prediction_bound(s, false_alarms))
