"""bench/derive_bounds.py: a synthetic spread of a few runs -> the expected file's entries, their
derivation comments, the claims kept or dropped, the spread section, and the validation verdict."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys

import pytest
from conftest import REPO

from prefalign.evaluation.check import check_metrics, load_expected, load_spread

spec = importlib.util.spec_from_file_location("derive_bounds", REPO / "bench/derive_bounds.py")
derive_bounds = importlib.util.module_from_spec(spec)
sys.modules["derive_bounds"] = derive_bounds  # dataclasses look their module up
spec.loader.exec_module(derive_bounds)

BOUND_SEEDS = [1234, 1, 2, 3]
KL = [1.0, 1.2, 1.4, 1.6, 1.8]  # dpo.kl_mean of the 4 seeds and the one dispatch variant: seeds' sd > sampling SE
SFT_JUDGE = [0.360, 0.370, 0.365, 0.372, 0.368]  # sampling SE (0.05 / 1.96) > sd 0.0047


def metrics(i: int, **override) -> dict:
    """Every metric derive_bounds.SPEC names, as seed_spread.py records them, varied a little by i."""
    e = i * 0.001
    m = {"base.implicit_reward_accuracy": 0.0, "base.reward_margin_mean": 0.0, "base.kl_mean": 0.0,
         "base.sigmoid_loss": math.log(2),
         "sft.implicit_reward_accuracy": 0.86 + e, "sft.logp_accuracy": 0.87 - e, "sft.judge_accuracy": 0.367,
         "sft.sampled_judge_accuracy": 0.27 + e, "sft.kl_mean": 18.0 + 10 * e, "sft.generation_length_mean": 2.8 - e,
         "sft.chosen_nll_per_token": 0.87 + e,
         "dpo.sampled_judge_accuracy": 0.376 + e, "dpo.sampled_judge_accuracy.half_width": 0.049,
         "dpo.judge_accuracy": 0.41 + e, "dpo.implicit_reward_accuracy": 0.63 - e, "dpo.reward_margin_mean": 0.33 + e,
         "dpo.kl_mean": 1.5, "dpo.kl_mean.half_width": 0.2, "dpo.sigmoid_loss": 0.67 + e,
         "dpo.logp_accuracy": 0.84 + e, "dpo.generation_length_mean": 2.7 + e,
         "dpo.task_prompts": 335, "dpo.kl_prompts": 335, "dpo.distinct_prompts": 335,
         "dpo_vs_sft.win_rate": 0.524 + e, "dpo_vs_sft.win_rate.half_width": 0.015,
         "dpo_vs_sft.win_rate_sampled": 0.554 + e, "dpo_vs_sft.win_rate_sampled.low": 0.534 + e,
         "dpo_vs_sft.win_rate_sampled.half_width": 0.02, "dpo_vs_sft.lc_win_rate": 0.524 + e,
         "dpo_vs_sft.lc_win_rate_sampled": 0.55 + e, "dpo_vs_sft.ties": 307 + i}
    m["sft.judge_accuracy.half_width"] = 0.05
    m.update(override)
    return m


def run(label: str, role: str, seed: int, i: int, env=None, **override) -> dict:
    return {"label": label, "role": role, "seed": seed, "env": env or {}, "date": "2026-12-06T22:00:00+00:00",
            "command": f"snakemake --configfile config.yaml --config seed={seed} --cores all",
            "git": {"commit": "0" * 40, "dirty": False}, "wall_s": 300.0, "metrics": metrics(i, **override)}


def spread_json(tmp_path, validation=(), bound_overrides=None, variant=None):
    bound_overrides = bound_overrides or {}
    runs = [run(f"seed-{s}", "bounds", s, i, **{"dpo.kl_mean": KL[i], "sft.judge_accuracy": SFT_JUDGE[i],
                                               **bound_overrides.get(i, {})})
            for i, s in enumerate(BOUND_SEEDS)]
    runs.append(run("seed-1234-native-default", "bounds", 1234, 4,
                    env={"PREFALIGN_CPU_NUMERICS": "native", "ATEN_CPU_CAPABILITY": "default"},
                    **{"dpo.kl_mean": KL[4], "sft.judge_accuracy": SFT_JUDGE[4], **(variant or {})}))
    runs += [run(f"seed-{seed}", "validation", seed, 2, **override) for seed, override in validation]
    path = tmp_path / "seed_spread.json"
    path.write_text(json.dumps({"config": "config.yaml", "config_sha256": "x", "runs": runs,
                                "machine": {"cpu": "Test CPU", "cpu_count": 2, "torch": "2.13.0+cpu",
                                            "torch_cpu_capability": "AVX512"}}))
    return path


def derive(tmp_path, capsys, **kwargs):
    path = spread_json(tmp_path, **kwargs)
    out = tmp_path / "expected.yaml"
    status = derive_bounds.main(["--spread", str(path), "--out", str(out)])
    return status, out, capsys.readouterr().out, json.loads(path.read_text())


def comment_above(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"  {name}:"))
    above = []
    for line in reversed(lines[:at]):
        if not line.startswith("  # "):
            break
        above.insert(0, line[4:])
    return above


def test_entries_are_the_mean_and_the_largest_of_3_se_the_prediction_interval_and_the_distance(tmp_path, capsys):
    status, out, printed, _ = derive(tmp_path, capsys, validation=[(5, {})])
    assert status == 0
    entries = load_expected(out)
    text = out.read_text()
    # the sd over the 4 seeds (the variant left out) governs through the prediction interval of one new run:
    # mean of all 5 runs 1.4, sd of the seeds 0.2582 (> 0.2 / 1.96, so 3 SE = 0.7746), t_0.995(3) = 5.841 times
    # sqrt(1 + 1/4): 6.53 sd = 1.686 -> 1.7 at one decimal
    assert derive_bounds.prediction_factor(4) == pytest.approx(5.841 * math.sqrt(1.25))
    assert entries["dpo.kl_mean"] == {"min": 0.0, "value": 1.4, "tolerance": 1.7}
    assert "  dpo.kl_mean: {min: 0.0, value: 1.4, tolerance: 1.7}" in text
    kl_comment = comment_above(text, "dpo.kl_mean")
    assert kl_comment[0] == ("n 5 (4 seeds): mean 1.4, sd 0.2582, min 1, max 1.8; SE 0.2582 = sd over the seeds "
                             "(sampling SE 0.102); 3 SE 0.7746, 99% prediction 6.53 sd = 1.686, largest distance from "
                             "the mean 0.4: tolerance 99% prediction, rounded outward")
    assert kl_comment[1].startswith("claim `min 0.0` holds on all 6 runs (smallest margin 1, seed-1234)")
    # the sampling SE governs where the runs agree more closely than the held-out prompts allow
    mean = statistics.fmean(SFT_JUDGE)
    assert entries["sft.judge_accuracy"]["value"] == round(mean, 3)
    assert entries["sft.judge_accuracy"]["tolerance"] == 0.077  # 3 x 0.05 / 1.96 = 0.0765, rounded up
    assert "= sampling SE (sd over the seeds" in comment_above(text, "sft.judge_accuracy")[0]
    # an exact constant keeps a zero tolerance; ln 2 rounds to 0.6931 with its rounding inside the tolerance
    assert entries["base.kl_mean"] == {"value": 0.0, "tolerance": 0.0}
    assert entries["base.sigmoid_loss"] == {"value": 0.6931, "tolerance": 0.0001}
    # every bound-setting run lies within every bound it set
    data = json.loads((tmp_path / "seed_spread.json").read_text())
    for r in data["runs"]:
        rows = check_metrics(entries, derive_bounds.sources_of(r))
        assert [row["metric"] for row in rows if row["status"] != "ok"] == [], r["label"]
    # the claims of today's file, where they hold
    assert entries["dpo_vs_sft.win_rate_sampled.low"] == {"above": 0.5}
    assert entries["dpo.sampled_judge_accuracy"]["above"] == ("sft.sampled_judge_accuracy + "
                                                              "dpo.sampled_judge_accuracy.half_width")
    assert entries["dpo.task_prompts"] == {"min": "dpo.distinct_prompts"}
    assert "WRITTEN BY bench/derive_bounds.py" in text and "never edit it by hand" in text
    assert "validation seed-5: 26 of 26 metrics within the bounds; all within" in printed


def test_a_dispatch_variant_far_from_the_seeds_sets_the_tolerance_by_its_distance(tmp_path, capsys):
    """sft.chosen_nll_per_token (no interval): the seeds agree to 0.0013 (3 SE 0.0039), the unpinned run is
    0.0228 from the mean: the tolerance is that distance, rounded up, and the variant lies within it."""
    _, out, _, _ = derive(tmp_path, capsys, variant={"sft.chosen_nll_per_token": 0.90})
    mean = statistics.fmean([0.870, 0.871, 0.872, 0.873, 0.90])
    entry = load_expected(out)["sft.chosen_nll_per_token"]
    assert entry == {"value": round(mean, 3), "tolerance": 0.023}
    assert entry["value"] + entry["tolerance"] >= 0.90
    assert comment_above(out.read_text(), "sft.chosen_nll_per_token")[0].endswith(
        "largest distance from the mean 0.0228: tolerance largest distance, rounded outward")


def test_the_spread_section_holds_the_seed_runs_only(tmp_path, capsys):
    _, out, _, data = derive(tmp_path, capsys, validation=[(5, {}), (6, {})])
    spread = load_spread(out)
    judge = spread["sft.judge_accuracy"]
    seeds = SFT_JUDGE[:4] + [metrics(2)["sft.judge_accuracy"]] * 2  # 4 bound seeds + 2 validation seeds, no variant
    assert judge["runs"] == 6 and judge["sd"] == math.ceil(statistics.stdev(seeds) * 1e4) / 1e4
    assert judge["min"] == 0.36 and judge["max"] == 0.372
    assert judge["source"].endswith("(seeds 1234, 1, 2, 3, 5, 6)")
    assert set(spread) == set(derive_bounds.SPREAD)
    assert data["derived"]["spread"]["sft.judge_accuracy"] == judge


def test_a_validation_seed_outside_the_bounds_is_reported(tmp_path, capsys):
    status, out, printed, data = derive(tmp_path, capsys, validation=[(5, {}), (6, {"dpo.kl_mean": 3.5})])
    assert status == 1
    assert "validation seed-5: 26 of 26 metrics within the bounds; all within" in printed
    assert "validation seed-6: 25 of 26 metrics within the bounds; OUT: dpo.kl_mean 3.5 not in [0, 3.1]" in printed
    failed = {r["label"]: r["failed"] for r in data["derived"]["validation"]}
    assert failed["seed-5"] == [] and [f["metric"] for f in failed["seed-6"]] == ["dpo.kl_mean"]
    assert load_expected(out)["dpo.kl_mean"]["tolerance"] == 1.7  # validation never widens a bound


def test_a_claim_that_fails_on_a_run_gives_way_to_a_weaker_one(tmp_path, capsys):
    """The sampled interval's lower end at 0.49 on one seed: no `above 0.5`, nor `min 0.5`; the entry is measured."""
    _, out, _, data = derive(tmp_path, capsys, bound_overrides={1: {"dpo_vs_sft.win_rate_sampled.low": 0.49}})
    text = out.read_text()
    entry = load_expected(out)["dpo_vs_sft.win_rate_sampled.low"]
    assert set(entry) == {"value", "tolerance"}
    comment = comment_above(text, "dpo_vs_sft.win_rate_sampled.low")
    assert "claim `above 0.5` did not hold on seed-1: dropped" in comment
    assert "no claim held on every run: measured (value +- tolerance) instead" in comment
    assert data["derived"]["entries"]["dpo_vs_sft.win_rate_sampled.low"]["chosen"] is None


def test_a_claim_that_fails_only_on_a_validation_seed_is_dropped_and_said_so(tmp_path, capsys):
    """DPO's sampled judge accuracy above SFT's by its half-width on every bound seed, but not on seed 5."""
    status, out, _, data = derive(tmp_path, capsys, validation=[(5, {"dpo.sampled_judge_accuracy": 0.30})])
    entry = load_expected(out)["dpo.sampled_judge_accuracy"]
    assert entry["above"] == "sft.sampled_judge_accuracy"
    comment = comment_above(out.read_text(), "dpo.sampled_judge_accuracy")
    assert ("claim `above sft.sampled_judge_accuracy + dpo.sampled_judge_accuracy.half_width` held on the "
            "bound-setting runs but failed validation run(s) seed-5: dropped") in comment
    options = data["derived"]["entries"]["dpo.sampled_judge_accuracy"]["options"]
    assert options[0]["failed_bound_runs"] == [] and options[0]["failed_runs"] == ["seed-5"]
    assert status == 1  # 0.30 is also outside the measured value +- tolerance: reported


def test_too_few_runs_are_refused(tmp_path):
    path = tmp_path / "seed_spread.json"
    path.write_text(json.dumps({"runs": [run("seed-1", "bounds", 1, 0)]}))
    with pytest.raises(SystemExit, match="1 bound-setting run"):
        derive_bounds.main(["--spread", str(path), "--out", str(tmp_path / "e.yaml")])
