"""Confidence intervals for the evaluation's headline metrics.

- `bootstrap_interval`: percentile bootstrap of a mean over independent units (test pairs,
  prompts), seeded, so the same data and seed give the same interval on every machine.
- `bootstrap_statistic_interval`: the same resampling of units for any statistic computed
  from a matrix of resampled unit indices (the length-controlled win rate refits its
  regression on every resample).
- `mean_and_se`: a mean with its standard error (sample standard deviation / sqrt(n)), and
  `normal_interval` the usual mean +- 1.96 SE (used for the KL estimate, whose standard
  error the report states).

Intervals are 95% throughout (`LEVEL`). They describe sampling noise over the held-out
units only; the training seed's noise is not in them.
"""

from __future__ import annotations

import math
from typing import Sequence

LEVEL = 0.95
Z_95 = 1.959963984540054  # standard normal quantile at 0.975


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if len(values) else None


def std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1); None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def mean_and_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and its standard error; SE is None with fewer than two values."""
    n = len(values)
    if n == 0:
        return None, None
    m = sum(values) / n
    sd = std(values)
    return m, None if sd is None else sd / math.sqrt(n)


def normal_interval(m: float | None, se: float | None) -> list[float] | None:
    if m is None or se is None:
        return None
    return [m - Z_95 * se, m + Z_95 * se]


def bootstrap_interval(values: Sequence[float], resamples: int, seed: int,
                       clusters: Sequence | None = None) -> list[float] | None:
    """95% percentile-bootstrap interval of the mean of `values`; None for no values.

    Resamples the units with replacement `resamples` times (numpy's PCG64 seeded with `seed`),
    so it is exact to the bit for the same inputs. With `clusters` (one label per value), whole
    clusters are resampled and the statistic is the mean over every value they hold: several
    ratings of one item, say, are not counted as independent evidence.
    """
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    rng = np.random.Generator(np.random.PCG64(seed))
    if clusters is not None:
        labels = {label: i for i, label in enumerate(dict.fromkeys(clusters))}
        index = np.asarray([labels[c] for c in clusters])
        sums = np.bincount(index, weights=data, minlength=len(labels))
        counts = np.bincount(index, minlength=len(labels)).astype(np.float64)
    else:
        sums, counts = data, np.ones_like(data)
    units = sums.size
    means = np.empty(resamples)
    # In chunks: 2,000 resamples of 500 units at once would be 8 MB of indices; this stays small.
    chunk = max(1, 200_000 // units)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, units, size=(stop - start, units))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return [float(low), float(high)]


def bootstrap_statistic_interval(statistic, units: int, resamples: int, seed: int) -> list[float] | None:
    """95% percentile-bootstrap interval of `statistic`, None for no units.

    `statistic(index)` gets an integer matrix (resamples in a chunk x units) of unit indices
    drawn with replacement (numpy's PCG64 seeded with `seed`) and returns one value per row.
    """
    import numpy as np

    if units == 0:
        return None
    rng = np.random.Generator(np.random.PCG64(seed))
    values = np.empty(resamples)
    chunk = max(1, 200_000 // units)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        values[start:stop] = statistic(rng.integers(0, units, size=(stop - start, units)))
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return [float(low), float(high)]


def quantiles(values: Sequence[float], points: Sequence[float]) -> list[float | None]:
    """Linear-interpolated quantiles of `values` at `points` (0-1); None for no values."""
    import numpy as np

    if len(values) == 0:
        return [None for _ in points]
    return [float(q) for q in np.quantile(np.asarray(values, dtype=np.float64), list(points))]
