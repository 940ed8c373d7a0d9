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
