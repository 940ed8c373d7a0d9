import math
import random

import pytest

from prefalign.evaluation import intervals


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = random.Random(3)
    values = [1.0 if rng.random() < 0.7 else 0.0 for _ in range(400)]
    first = intervals.bootstrap_interval(values, 2000, seed=11)
    assert first == intervals.bootstrap_interval(values, 2000, seed=11)  # bit-identical
    assert first != intervals.bootstrap_interval(values, 2000, seed=12)
    low, high = first
    m = sum(values) / len(values)
    assert low < m < high
    # For a proportion the percentile bootstrap is close to the normal approximation.
    half = 1.96 * math.sqrt(m * (1 - m) / len(values))
    assert high - low == pytest.approx(2 * half, rel=0.15)


def test_bootstrap_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(0)
    covered = 0
    for trial in range(200):
        sample = [rng.gauss(1.0, 2.0) for _ in range(60)]
        low, high = intervals.bootstrap_interval(sample, 400, seed=trial)
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / 200 <= 0.99


def test_constant_values_give_a_point_interval_and_empty_gives_none():
    assert intervals.bootstrap_interval([0.0] * 50, 100, seed=1) == [0.0, 0.0]
    assert intervals.bootstrap_interval([], 100, seed=1) is None
    assert intervals.mean_and_se([]) == (None, None)
    assert intervals.mean_and_se([2.0]) == (2.0, None)
    assert intervals.normal_interval(None, None) is None


def test_mean_se_and_normal_interval():
    values = [1.0, 2.0, 3.0, 4.0]
    m, se = intervals.mean_and_se(values)
    assert m == 2.5
    assert se == pytest.approx(math.sqrt(5 / 3) / 2)
    low, high = intervals.normal_interval(m, se)
    assert low == pytest.approx(m - 1.959964 * se) and high == pytest.approx(m + 1.959964 * se)
    assert intervals.std(values) == pytest.approx(math.sqrt(5 / 3))


def test_quantiles():
    assert intervals.quantiles([0.0, 10.0], [0.0, 0.5, 1.0]) == [0.0, 5.0, 10.0]
    assert intervals.quantiles([], [0.5]) == [None]


def test_a_clustered_bootstrap_resamples_whole_clusters():
    """10 prompts x 10 identical values each: the clustered interval is, to the bit, the plain interval of the
    10 prompt means (the same units, seed and draws), and about sqrt(10) times wider than treating the 100
    values as independent (issue 23, item 4: the bootstrap must not ignore prompt clusters)."""
    means = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    values = [m for m in means for _ in range(10)]
    clusters = [f"prompt {i}" for i in range(10) for _ in range(10)]
    clustered = intervals.bootstrap_interval(values, 2000, 7, clusters=clusters)
    assert clustered == intervals.bootstrap_interval(means, 2000, 7)
    independent = intervals.bootstrap_interval(values, 2000, 7)
    assert clustered[1] - clustered[0] > 2.5 * (independent[1] - independent[0])


def test_the_judges_accuracy_interval_is_clustered_by_prompt():
    """evaluate-judge: 6 test pairs per prompt, the judge right on every pair of 5 prompts and wrong on every pair of
    the other 5: its interval is the bootstrap of the 10 prompt means, not of 60 independent pairs."""
    from prefalign.evaluation.judge_accuracy import JudgeEvalSettings, evaluate_judge

    class ByWord:  # scores an answer by its first word: what the test's judge "believes"
        def score(self, prompts, answers):
            return [1.0 if a.startswith("good") else 0.0 for a in answers]

        def describe(self):
            return {"kind": "trained", "path": "by-word"}

    records = [{"id": f"p{i}/{j}", "source": "s", "prompt": [{"role": "user", "content": f"question {i}"}],
                "chosen": [{"role": "assistant", "content": "good" if i % 2 else "bad"}],
                "rejected": [{"role": "assistant", "content": "bad" if i % 2 else "good"}]}
               for i in range(10) for j in range(6)]
    settings = JudgeEvalSettings(bootstrap_samples=2000, seed=3)
    result = evaluate_judge(records, ByWord(), settings)
    interval = result["intervals"]["accuracy"]
    assert result["metrics"]["accuracy"] == 0.5 and result["metrics"]["pairs"] == 60
    assert [interval["low"], interval["high"]] == intervals.bootstrap_interval([float(i % 2) for i in range(10)],
                                                                               2000, 3)
