"""The anomaly threshold: the score that at most the false-alarm target of good images exceed.

A quantile can be read off the held-out good scores only where they reach it: 0.5 % of 45
images is less than one image, and their highest score is then about the 98th percentile, so a
frame of the same line alarms two to four times as often as the target says. Where the sample
cannot show the quantile, the threshold is the one-sided normal tolerance bound of the scores'
logits instead: mean + k * sd, with k chosen so that, for 95 % of the held-out sets a line could
have given, at most the target share of good frames lie above it (the quality engineer's
k-factor; a bound that held the target only on average let half the bundles break it, and with
45 images the spread of that average is wide). Never below the highest held-out score. The
logit is the global score's (``pi_inspect.edge.global_score``): one score scale on both sides.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from pi_inspect.edge.global_score import logit, sigmoid

CONFIDENCE = 0.95  # the share of held-out sets whose threshold keeps the false-alarm target


def tolerance_factor(share: float, n: int, confidence: float = CONFIDENCE) -> float:
    """k such that mean + k * sd of ``n`` normal values lies above at least ``share`` of the
    population with probability ``confidence`` (Natrella's approximation to the noncentral-t
    value: within 1.3 % of it from 5 values, 0.3 % from 45)."""
    zp, zc = NormalDist().inv_cdf(share), NormalDist().inv_cdf(confidence)
    n = max(n, 3)
    a = 1.0 - zc * zc / (2.0 * (n - 1))
    b = zp * zp - zc * zc / n
    return (zp + math.sqrt(max(zp * zp - a * b, 0.0))) / a


def tolerance_bound(good_scores: np.ndarray, false_alarms: float) -> float:
    """The score that, with ``CONFIDENCE``, at most ``false_alarms`` of good images exceed, were
    the logits of good scores normal (mean and spread estimated from ``good_scores``)."""
    logits = logit(good_scores)
    n = len(logits)
    if n < 3:
        return float(np.max(good_scores))
    k = tolerance_factor(1.0 - false_alarms, n)
    return sigmoid(float(logits.mean()) + k * float(logits.std(ddof=1)))


def calibrate(good_scores: np.ndarray, false_alarms: float) -> float:
    """The threshold that at most ``false_alarms`` of good scores exceed (strictly above it
    alarms): the empirical quantile where the sample reaches it, never below the highest score
    at that rank; else the tolerance bound, never below the highest score."""
    s = np.sort(np.asarray(good_scores, dtype=np.float64))
    allowed = int(np.floor(false_alarms * len(s)))
    if allowed >= 1:
        return float(s[len(s) - 1 - allowed])
    return max(float(s[-1]), tolerance_bound(s, false_alarms))
