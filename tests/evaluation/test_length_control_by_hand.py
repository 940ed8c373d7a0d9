"""The length-controlled win rate's fit, solved by hand (issue 23, item 4).

With the length difference taking two values, +d on 20 prompts and -d on 20, the logistic fit
P(win) = sigmoid(b0 + b1 x) reproduces each group's win share exactly (two parameters, two groups):
with x = +-c, c = tanh(d / sd(dlen)),

    b0 = (logit p+ + logit p-) / 2          b1 = (logit p+ - logit p-) / (2 c)

and the sample sd (n - 1) of 20 x (+d) and 20 x (-d) is d sqrt(40/39), so c = tanh(sqrt(39/40)),
whatever d. Here p+ = 16/20 = 0.8 and p- = 8/20 = 0.4. The fit's small ridge (1e-3) moves b0 by
about 3e-5 and b1 by about 3e-4, inside the 1e-3 tolerance; dropping the sd scaling (c = tanh(d),
about 1 for d = 10) moves b1 to 0.896.
"""

from __future__ import annotations

import math

import pytest

from prefalign.evaluation.length_control import lc_win_rate


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_the_fit_of_two_length_groups_is_the_hand_solution():
    outcomes = [1.0] * 16 + [0.0] * 4 + [1.0] * 8 + [0.0] * 12  # +d: 16 of 20 won; -d: 8 of 20
    model = [30.0] * 20 + [10.0] * 20
    baseline = [20.0] * 40  # dlen = +10 on the first 20 prompts, -10 on the others
    result = lc_win_rate(outcomes, model, baseline, resamples=200, seed=1)
    c = math.tanh(math.sqrt(39 / 40))
    b0 = (logit(0.8) + logit(0.4)) / 2
    b1 = (logit(0.8) - logit(0.4)) / (2 * c)
    assert result["length_coefficient"] == pytest.approx(b1, abs=1e-3)  # 1.1846
    assert result["win_rate"] == pytest.approx(1 / (1 + math.exp(-b0)), abs=1e-3)  # 0.6202, raw 0.6
    # The scale of the lengths does not matter (the feature is the difference over its sd): tokens or characters.
    scaled = lc_win_rate(outcomes, [x * 7 for x in model], [x * 7 for x in baseline], resamples=200, seed=1)
    assert scaled["length_coefficient"] == pytest.approx(result["length_coefficient"], abs=1e-9)
