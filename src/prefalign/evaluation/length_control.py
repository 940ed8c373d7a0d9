"""Length-controlled win rate: the judge's preference with the answer-length difference regressed out.

Judges, human and model alike, tend to prefer longer answers, so a model can gain raw win
rate by writing more rather than better. In the spirit of AlpacaEval 2's length-controlled
win rate (Dubois et al., 2024), the per-prompt outcome y (1 win, 1/2 tie, 0 loss of the model)
is fitted by a logistic regression on the length difference

    P(model preferred) = sigmoid(b0 + b1 * tanh(dlen / sd(dlen)))

(dlen = model's answer tokens - baseline's; tanh bounds the pull of a few very long answers,
as AlpacaEval does), and the length-controlled win rate is the fit's prediction at equal
lengths, sigmoid(b0). With one pair of models there is no per-prompt difficulty term (it
needs several models per prompt). When every length difference is 0 the fit has no length
term and the LC win rate equals the raw one. Ties enter as y = 1/2 (a soft label).

The fit is Newton's method on the penalized log-likelihood (a small ridge, RIDGE, keeps it
finite when one side wins every prompt), vectorized so the bootstrap refits it on every
resample of prompts (prefalign.evaluation.intervals.bootstrap_statistic_interval).
"""

from __future__ import annotations

from typing import Sequence

from prefalign.evaluation import intervals

RIDGE = 1e-3  # L2 penalty on both coefficients (log-likelihood units): negligible unless the data separate
ITERATIONS = 50


def length_feature(model_lengths: Sequence[float], baseline_lengths: Sequence[float]):
    """tanh(dlen / sd(dlen)) per prompt (all 0 when the lengths never differ), as a numpy array."""
    import numpy as np

    diff = np.asarray(model_lengths, dtype=np.float64) - np.asarray(baseline_lengths, dtype=np.float64)
    scale = diff.std(ddof=1) if diff.size > 1 else 0.0
    return np.tanh(diff / scale) if scale > 0 else np.zeros_like(diff)


def fit(outcomes, feature):
    """Coefficients (b0, b1) of the logistic fit, for one data set (1-D arrays) or a batch (2-D, one per row)."""
    import numpy as np

    y = np.atleast_2d(np.asarray(outcomes, dtype=np.float64))
    x = np.atleast_2d(np.asarray(feature, dtype=np.float64))
    b = np.zeros((y.shape[0], 2))
    for _ in range(ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-(b[:, :1] + b[:, 1:] * x)))
        w = p * (1.0 - p)
        g0 = (y - p).sum(axis=1) - RIDGE * b[:, 0]
        g1 = ((y - p) * x).sum(axis=1) - RIDGE * b[:, 1]
        h00 = w.sum(axis=1) + RIDGE
        h01 = (w * x).sum(axis=1)
        h11 = (w * x * x).sum(axis=1) + RIDGE
        det = h00 * h11 - h01 * h01
        step0 = (h11 * g0 - h01 * g1) / det
        step1 = (h00 * g1 - h01 * g0) / det
        b[:, 0] += step0
        b[:, 1] += step1
        if np.max(np.abs(step0) + np.abs(step1)) < 1e-10:
            break
    return b if np.ndim(outcomes) > 1 else b[0]


def sigmoid(z: float) -> float:
    import math

    return 1.0 / (1.0 + math.exp(-z))


def lc_win_rate(outcomes: Sequence[float], model_lengths: Sequence[float], baseline_lengths: Sequence[float],
                resamples: int, seed: int) -> dict:
    """The length-controlled win rate with its 95% bootstrap interval over prompts, and the length slope b1."""
    import numpy as np

    if not outcomes:
        return {"win_rate": None, "interval": None, "length_coefficient": None}
    y = np.asarray(outcomes, dtype=np.float64)
    x = length_feature(model_lengths, baseline_lengths)
    b0, b1 = fit(y, x)

    def statistic(index):
        coefficients = fit(y[index], x[index])
        return 1.0 / (1.0 + np.exp(-coefficients[:, 0]))

    interval = intervals.bootstrap_statistic_interval(statistic, len(y), resamples, seed)
    return {
        "win_rate": sigmoid(b0),
        "interval": {"low": interval[0], "high": interval[1],
                     "method": f"bootstrap over prompts, refitted ({resamples} resamples)"},
        "length_coefficient": float(b1),
        "method": "logistic regression of the outcome on tanh(length difference / its sd); prediction at equal length",
    }
