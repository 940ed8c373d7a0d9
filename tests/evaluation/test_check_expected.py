import json

from conftest import run_cli


def write_sources(tmp_path, dpo=0.8, sft_judge=0.5, dpo_judge=0.6):
    paths = []
    for name, metrics in (("sft", {"judge_accuracy": sft_judge, "implicit_reward_accuracy": 0.3}),
                          ("dpo", {"judge_accuracy": dpo_judge, "implicit_reward_accuracy": dpo, "kl_mean": 1.0})):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"model": name, "metrics": metrics}))
        paths.append(path)
    cmp = tmp_path / "cmp.json"
    cmp.write_text(json.dumps({"model": "dpo", "baseline": "sft", "metrics": {"win_rate": 0.55}}))
    return paths, cmp


EXPECTED = """\
metrics:
  dpo.implicit_reward_accuracy: {min: 0.75}
  dpo.kl_mean: {value: 1.1, tolerance: 0.2}
  dpo.judge_accuracy: {min: sft.judge_accuracy}
  dpo_vs_sft.win_rate: {min: 0.5, max: 1}
"""


def check(tmp_path, expected_text, **kwargs):
    expected = tmp_path / "expected.yaml"
    expected.write_text(expected_text)
    paths, cmp = write_sources(tmp_path, **kwargs)
    return run_cli("check", "--expected", expected, "--eval-metrics", *paths, "--comparisons", cmp,
                   "--table", tmp_path / "table.md", check=False)


def test_within_bounds_passes_and_writes_the_table(tmp_path):
    result = check(tmp_path, EXPECTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 of 4 metrics within the bounds" in result.stdout and "results reproduced" in result.stdout
    table = (tmp_path / "table.md").read_text()
    assert "| dpo.kl_mean " in table and "1.1 ± 0.2" in table and "[0.9000, 1.3000]" in table
    assert "min sft.judge_accuracy" in table and "[0.5000, inf]" in table


def test_a_violated_bound_fails_with_a_table_naming_it(tmp_path):
    result = check(tmp_path, EXPECTED, dpo=0.7, dpo_judge=0.4)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    row = next(line for line in lines if line.startswith("| dpo.implicit_reward_accuracy"))
    assert "0.7000" in row and "[0.7500, inf]" in row and row.rstrip(" |").endswith("OUT")
    assert next(line for line in lines if line.startswith("| dpo.judge_accuracy")).rstrip(" |").endswith("OUT")
    assert next(line for line in lines if line.startswith("| dpo.kl_mean")).rstrip(" |").endswith("ok")
    assert "NOT reproduced (2 out of bounds or missing)" in result.stdout
    assert not (tmp_path / "table.md").exists()


def test_a_metric_the_run_lacks_is_missing_not_passed(tmp_path):
    result = check(tmp_path, EXPECTED + "  dpo.no_such_metric: {min: 0}\n")
    assert result.returncode == 1
    assert "MISSING (not found: dpo.no_such_metric)" in result.stdout


def test_a_malformed_expected_file_names_file_line_and_key(tmp_path):
    result = check(tmp_path, EXPECTED + "  dpo.pairs: {minimum: 3}\n")
    assert result.returncode == 2
    assert f"{tmp_path / 'expected.yaml'}:6: metrics.dpo.pairs.minimum: expected one of value, tolerance, min, max" \
        in result.stderr
    assert "Traceback" not in result.stderr
    result = check(tmp_path, EXPECTED + "  dpo.pairs: {value: 3}\n")
    assert result.returncode == 2 and "expected value and tolerance together" in result.stderr


def write_intervals(tmp_path, dpo_judge=0.45, low=0.505):
    """SFT and DPO with intervals, and a comparison with its greedy and sampled intervals."""
    models = {"sft": (0.36, 0.31, 0.41), "dpo": (dpo_judge, dpo_judge - 0.05, dpo_judge + 0.05)}
    paths = []
    for name, (value, lo, hi) in models.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"model": name, "metrics": {"judge_accuracy": value},
                                    "intervals": {"judge_accuracy": {"low": lo, "high": hi, "method": "b"}}}))
        paths.append(path)
    cmp = tmp_path / "cmp.json"
    cmp.write_text(json.dumps({"model": "dpo", "baseline": "sft", "metrics": {"win_rate": low + 0.02},
                               "greedy": {"interval": {"low": low, "high": low + 0.04}},
                               "sampled": {"interval": {"low": 0.49, "high": 0.53}}}))
    return paths, cmp


INTERVAL_CLAIMS = """\
metrics:
  dpo_vs_sft.win_rate.low: {above: 0.5}
  dpo.judge_accuracy: {above: sft.judge_accuracy + dpo.judge_accuracy.half_width}
  dpo_vs_sft.win_rate_sampled.half_width: {below: 0.03}
"""


def check_intervals(tmp_path, **kwargs):
    expected = tmp_path / "expected.yaml"
    expected.write_text(INTERVAL_CLAIMS)
    paths, cmp = write_intervals(tmp_path, **kwargs)
    return run_cli("check", "--expected", expected, "--eval-metrics", *paths, "--comparisons", cmp,
                   "--table", tmp_path / "table.md", check=False)


def test_interval_bounds_and_a_gap_of_more_than_the_half_width_pass(tmp_path):
    result = check_intervals(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    table = (tmp_path / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| dpo.judge_accuracy"))
    assert "above sft.judge_accuracy + dpo.judge_accuracy.half_width" in row and "(0.4100, inf]" in row
    assert "(0.5000, inf]" in table and "[-inf, 0.0300)" in table


def test_a_gap_within_the_half_width_or_an_interval_touching_one_half_is_out(tmp_path):
    result = check_intervals(tmp_path, dpo_judge=0.41, low=0.5)  # gap 0.05 = the half-width; low = 0.5 exactly
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    for metric in ("dpo.judge_accuracy", "dpo_vs_sft.win_rate.low"):
        assert next(line for line in lines if line.startswith(f"| {metric} ")).rstrip(" |").endswith("OUT")


def test_a_bound_naming_an_unknown_metric_is_missing_and_a_bad_sum_is_refused(tmp_path):
    expected = tmp_path / "expected.yaml"
    paths, cmp = write_intervals(tmp_path)
    expected.write_text("metrics:\n  dpo.judge_accuracy: {above: sft.judge_accuracy + dpo.nothing.half_width}\n")
    result = run_cli("check", "--expected", expected, "--eval-metrics", *paths, "--comparisons", cmp,
                     "--table", tmp_path / "table.md", check=False)
    assert result.returncode == 1 and "MISSING (not found: dpo.nothing.half_width)" in result.stdout
    expected.write_text("metrics:\n  dpo.judge_accuracy: {above: sft.judge_accuracy plus 2}\n")
    result = run_cli("check", "--expected", expected, "--eval-metrics", *paths, "--comparisons", cmp,
                     "--table", tmp_path / "table.md", check=False)
    assert result.returncode == 2 and "metrics.dpo.judge_accuracy.above: expected a number, a metric name" in \
        result.stderr


# ---------------------------------------------------------------- spread: the rerun noise floor (issue 23)

SPREAD = EXPECTED + """\
spread:
  dpo_vs_sft.win_rate: {sd: 0.012, min: 0.49, max: 0.53, runs: 7, source: bench/results/seed_spread.json}
  dpo.judge_accuracy: {sd: 0.02, runs: 3}
"""


def test_a_spread_beside_the_metrics_is_read_and_does_not_change_the_check(tmp_path):
    from prefalign.evaluation.check import load_spread

    result = check(tmp_path, SPREAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 of 4 metrics within the bounds" in result.stdout
    spread = load_spread(tmp_path / "expected.yaml")
    assert spread["dpo_vs_sft.win_rate"] == {"sd": 0.012, "min": 0.49, "max": 0.53, "runs": 7,
                                             "source": "bench/results/seed_spread.json"}
    assert spread["dpo.judge_accuracy"] == {"sd": 0.02, "runs": 3}
    (tmp_path / "plain.yaml").write_text(EXPECTED)
    assert load_spread(tmp_path / "plain.yaml") == {}


def test_a_malformed_spread_names_file_line_and_key(tmp_path):
    cases = [
        ("  dpo_vs_sft.win_rate: {sd: -0.1, runs: 7}\n", ":7: spread.dpo_vs_sft.win_rate.sd: expected a number >= 0"),
        ("  dpo_vs_sft.win_rate: {sd: 0.1, runs: 1}\n", ":7: spread.dpo_vs_sft.win_rate.runs: expected an integer >= 2"),
        ("  dpo_vs_sft.win_rate: {sd: 0.1}\n", ":7: spread.dpo_vs_sft.win_rate: expected `runs`"),
        ("  dpo_vs_sft.win_rate: {sd: 0.1, runs: 3, spread: 2}\n",
         ":7: spread.dpo_vs_sft.win_rate.spread: expected one of sd, min, max, runs, source"),
        ("  dpo_vs_sft.win_rate: {sd: 0.1, runs: 3, min: 0.6, max: 0.5}\n",
         ":7: spread.dpo_vs_sft.win_rate: expected min <= max"),
        ("  win_rate: {sd: 0.1, runs: 3}\n", ":7: spread.win_rate: expected a name <source>.<metric>"),
        ("  dpo_vs_sft.win_rate: {sd: high, runs: 3}\n", ":7: spread.dpo_vs_sft.win_rate.sd: expected a number >= 0"),
    ]
    for line, message in cases:
        result = check(tmp_path, EXPECTED + "spread:\n" + line)
        assert result.returncode == 2, line
        assert f"{tmp_path / 'expected.yaml'}{message}" in result.stderr, (line, result.stderr)
        assert "Traceback" not in result.stderr
    result = check(tmp_path, EXPECTED + "spread: [1, 2]\n")
    assert result.returncode == 2 and ":6: spread: expected a mapping" in result.stderr
