"""Step tests: the whole chain through the `prefalign` CLI on toy data, without Snakemake.

Small settings (a 30k-parameter model, tens of steps) keep it to well under a minute; the
workflow tests run the real default.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

import pytest
from conftest import TINY_MODEL, read_jsonl, run_cli

from prefalign.data import tasks

# trains the chain's SFT, DPO and reward models (the fast tier trains nothing longer than a few seconds)
pytestmark = pytest.mark.slow

EVAL = ["--judge-prompts", "20", "--kl-prompts", "20", "--max-new-tokens", "6", "--threads", "1",
        "--bootstrap-samples", "200"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    run_cli("synth", "--format", "hh-rlhf", "--name", "hh", "--records", "300", "--out", root / "raw/hh.jsonl")
    run_cli("synth", "--format", "shp", "--name", "shp", "--records", "150", "--out", root / "raw/shp.jsonl")
    for name, fmt in (("hh", "hh-rlhf"), ("shp", "shp")):
        run_cli("normalize", "--format", fmt, "--name", name, "--input", root / f"raw/{name}.jsonl",
                "--records", root / f"data/{name}/normalized.jsonl", "--rejects", root / f"data/{name}/rejects.jsonl",
                "--stats", root / f"data/{name}/stats.json")
    run_cli("split", "--inputs", root / "data/hh/normalized.jsonl", root / "data/shp/normalized.jsonl",
            "--train", root / "data/train.jsonl", "--test", root / "data/test.jsonl",
            "--rejects", root / "data/rejects.jsonl", "--stats", root / "data/stats.json", "--test-fraction", "0.2")
    run_cli("build-base", "--train", root / "data/train.jsonl", "--out", root / "model/base",
            "--environment", root / "model/environment.json", *TINY_MODEL)
    run_cli("sft", "--base", root / "model/base", "--train", root / "data/train.jsonl", "--out", root / "sft/model",
            "--metrics", root / "sft/metrics.json", "--log-history", root / "sft/log_history.jsonl",
            "--max-steps", "20", "--batch-size", "8", "--logging-steps", "5", "--threads", "1")
    run_cli("dpo", "--sft", root / "sft/model", "--train", root / "data/train.jsonl", "--out", root / "dpo/model",
            "--adapter-out", root / "dpo/adapter", "--metrics", root / "dpo/metrics.json",
            "--log-history", root / "dpo/log_history.jsonl", "--environment", root / "dpo/environment.json",
            "--max-steps", "6", "--batch-size", "8", "--logging-steps", "1", "--threads", "1")
    for model, reference in (("base", "base"), ("sft", "base"), ("dpo", "sft")):
        run_cli("evaluate", "--name", model, "--reference-name", reference, "--model", root / f"{model}/model"
                if model != "base" else root / "model/base", "--reference",
                root / f"{reference}/model" if reference != "base" else root / "model/base",
                "--test", root / "data/test.jsonl", "--metrics", root / f"eval/{model}/metrics.json",
                "--generations", root / f"eval/{model}/generations.jsonl", "--pairs", root / f"eval/{model}/pairs.jsonl",
                *EVAL)
    run_cli("compare", "--model", root / "eval/dpo/metrics.json", root / "eval/dpo/generations.jsonl",
            "--baseline", root / "eval/sft/metrics.json", root / "eval/sft/generations.jsonl",
            "--out", root / "eval/compare/dpo_vs_sft.json")
    (root / "manifest.json").write_text('{"artifacts": {}}\n')  # stands in for issue 8's manifest
    run_cli("report", *report_inputs(root), "--md", root / "report/report.md", "--html", root / "report/report.html")
    return root


def report_inputs(root):
    """The `prefalign report` flags of the chain's outputs under `root`."""
    return ["--eval-metrics", *[root / f"eval/{m}/metrics.json" for m in ("base", "sft", "dpo")],
            "--generations", *[root / f"eval/{m}/generations.jsonl" for m in ("base", "sft", "dpo")],
            "--pairs", *[root / f"eval/{m}/pairs.jsonl" for m in ("base", "sft", "dpo")],
            "--comparisons", root / "eval/compare/dpo_vs_sft.json", "--manifest", root / "manifest.json",
            "--dataset-stats", root / "data/hh/stats.json", root / "data/shp/stats.json",
            "--split-stats", root / "data/stats.json", "--sft-metrics", root / "sft/metrics.json",
            "--sft-log", root / "sft/log_history.jsonl", "--dpo-metrics", root / "dpo/metrics.json",
            "--dpo-log", root / "dpo/log_history.jsonl", "--base-info", root / "model/base/prefalign_base.json",
            "--environment", root / "dpo/environment.json", "--title", "step test"]


def test_data_accounting_adds_up(chain):
    for name in ("hh", "shp"):
        stats = json.loads((chain / f"data/{name}/stats.json").read_text())
        kept = len(read_jsonl(chain / f"data/{name}/normalized.jsonl"))
        dropped = len(read_jsonl(chain / f"data/{name}/rejects.jsonl"))
        assert stats["in"] == kept + dropped == (300 if name == "hh" else 150)
    split = json.loads((chain / "data/stats.json").read_text())
    assert split["train"] == len(read_jsonl(chain / "data/train.jsonl"))
    assert split["test"] == len(read_jsonl(chain / "data/test.jsonl"))


def test_base_model_is_safetensors_with_a_chat_template(chain):
    from transformers import AutoTokenizer

    base = chain / "model/base"
    names = {p.name for p in base.iterdir()}
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    tokenizer = AutoTokenizer.from_pretrained(base)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nWhat is 1 + 2?<|im_end|>\n<|im_start|>assistant\n"
    info = json.loads((base / "prefalign_base.json").read_text())
    assert info["files"]["model.safetensors"] and info["parameters"] > 10_000


def test_sft_and_dpo_write_checkpoints_and_trl_metrics(chain):
    sft = json.loads((chain / "sft/metrics.json").read_text())
    assert sft["train"]["steps"] == 20
    assert sft["resolved"] == {
        "backend": "trl", "precision": "fp32", "device": "cpu", "gpu_count": 0, "gpu_name": None,
        "compute_capability": None, "driver": None,
        "why": "backend auto: no CUDA GPU; precision auto: fp32 on the CPU"}
    dpo = json.loads((chain / "dpo/metrics.json").read_text())
    assert dpo["train"]["steps"] == 6
    # Policy = reference at the first step, so the sigmoid DPO loss is ln 2.
    assert dpo["train"]["first_loss"] == pytest.approx(math.log(2), abs=1e-4)
    history = read_jsonl(chain / "dpo/log_history.jsonl")
    logged = set().union(*history)
    assert {"rewards/accuracies", "rewards/margins", "logps/chosen", "loss"} <= logged
    assert not logged & {"train_runtime", "train_samples_per_second"}  # clock values stay out of artifacts
    assert (chain / "dpo/adapter/adapter_model.safetensors").exists()
    assert (chain / "dpo/model/model.safetensors").exists()


def test_evaluation_metrics_and_judged_generations(chain):
    base = json.loads((chain / "eval/base/metrics.json").read_text())["metrics"]
    assert base["implicit_reward_accuracy"] == 0.0 and base["reward_margin_mean"] == 0.0  # its own reference
    for model in ("sft", "dpo"):
        result = json.loads((chain / f"eval/{model}/metrics.json").read_text())
        metrics = result["metrics"]
        for key in ("implicit_reward_accuracy", "logp_accuracy", "logp_accuracy_normalized", "reward_margin_mean",
                    "judge_accuracy"):
            assert 0.0 <= metrics[key] <= 1.0 or key == "reward_margin_mean"
        generations = read_jsonl(chain / f"eval/{model}/generations.jsonl")
        assert len(generations) == metrics["judged_prompts"] <= 20
        for g in generations:
            assert g["correct"] == tasks.judge(g["prompt"], g["answer"])
    assert json.loads((chain / "eval/dpo/metrics.json").read_text())["reference"] == "sft"


def test_intervals_kl_and_sampled_answers(chain):
    results = {m: json.loads((chain / f"eval/{m}/metrics.json").read_text()) for m in ("base", "sft", "dpo")}
    for name, result in results.items():
        metrics, bounds = result["metrics"], result["intervals"]
        for key in ("implicit_reward_accuracy", "reward_margin_mean", "logp_accuracy", "logp_accuracy_normalized",
                    "judge_accuracy", "generation_length_mean", "kl_mean"):
            assert bounds[key]["low"] <= metrics[key] <= bounds[key]["high"], (name, key)
        assert metrics["kl_samples"] == metrics["judged_prompts"]
        assert metrics["reward_margin_p05"] <= metrics["reward_margin_median"] <= metrics["reward_margin_p95"]
        generations = read_jsonl(chain / f"eval/{name}/generations.jsonl")
        for g in generations:
            assert g["sampled"]["correct"] == tasks.judge(g["prompt"], g["sampled"]["answer"])
            assert g["score"] == (1.0 if g["correct"] else 0.0)
        pairs = read_jsonl(chain / f"eval/{name}/pairs.jsonl")
        assert len(pairs) == metrics["pairs"]
        assert sum(p["margin"] > 0 for p in pairs) / len(pairs) == metrics["implicit_reward_accuracy"]
    # Its own reference: no drift at all. After training the per-sample log ratios vary (20 SFT steps
    # move the model only a little, so the estimate itself may be near 0 here; the default's is not).
    assert results["base"]["metrics"]["kl_mean"] == 0.0 and results["base"]["metrics"]["kl_se"] == 0.0
    for name in ("sft", "dpo"):
        ratios = [g["sampled"]["log_ratio"] for g in read_jsonl(chain / f"eval/{name}/generations.jsonl")]
        assert results[name]["metrics"]["kl_mean"] == pytest.approx(sum(ratios) / len(ratios))
        assert results[name]["metrics"]["kl_se"] > 0 and len(set(ratios)) > 1
    assert results["dpo"]["sampling"] == {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


def test_sampled_answers_are_seeded(chain, tmp_path):
    def sampled(seed):
        out = tmp_path / f"seed{seed}"
        run_cli("evaluate", "--name", "dpo", "--model", chain / "dpo/model", "--reference", chain / "sft/model",
                "--test", chain / "data/test.jsonl", "--metrics", out / "m.json", "--generations", out / "g.jsonl",
                *EVAL, "--seed", str(seed))
        return [g["sampled"]["answer"] for g in read_jsonl(out / "g.jsonl")]

    first = sampled(1234)
    assert first == [g["sampled"]["answer"] for g in read_jsonl(chain / "eval/dpo/generations.jsonl")]
    assert sampled(99) != first


def test_comparison_of_dpo_and_sft(chain):
    result = json.loads((chain / "eval/compare/dpo_vs_sft.json").read_text())
    greedy = result["greedy"]
    assert (result["model"], result["baseline"], result["judge"]) == ("dpo", "sft", {"kind": "task"})
    assert greedy["wins"] + greedy["ties"] + greedy["losses"] == greedy["prompts"] > 0
    assert greedy["interval"]["low"] <= greedy["win_rate"] <= greedy["interval"]["high"]
    dpo = {g["id"]: g for g in read_jsonl(chain / "eval/dpo/generations.jsonl")}
    sft = {g["id"]: g for g in read_jsonl(chain / "eval/sft/generations.jsonl")}
    assert greedy["wins"] == sum(dpo[i]["correct"] and not sft[i]["correct"] for i in dpo)


def test_reward_model_judge_through_the_steps(chain, tmp_path):
    from tiny_reward_model import train_tiny_reward_model

    rm = train_tiny_reward_model(tmp_path / "rm")
    for model, reference in (("sft", "model/base"), ("dpo", "sft/model")):
        run_cli("evaluate", "--name", model, "--model", chain / f"{model}/model", "--reference", chain / reference,
                "--test", chain / "data/test.jsonl", "--metrics", tmp_path / f"{model}.json",
                "--generations", tmp_path / f"{model}.jsonl", *EVAL, "--judge", "reward_model", "--reward-model", rm)
    result = json.loads((tmp_path / "dpo.json").read_text())
    assert result["judge"] == {"kind": "reward_model", "path": str(rm), "architecture": "LlamaForSequenceClassification"}
    scores = [g["score"] for g in read_jsonl(tmp_path / "dpo.jsonl")]
    assert len(set(scores)) > 1 and result["metrics"]["judge_score_mean"] == pytest.approx(sum(scores) / len(scores))
    run_cli("compare", "--model", tmp_path / "dpo.json", tmp_path / "dpo.jsonl", "--baseline", tmp_path / "sft.json",
            tmp_path / "sft.jsonl", "--out", tmp_path / "cmp.json")
    assert json.loads((tmp_path / "cmp.json").read_text())["judge"]["kind"] == "reward_model"
    # Mixing judges is refused with the reason, not a traceback.
    mixed = run_cli("compare", "--model", tmp_path / "dpo.json", tmp_path / "dpo.jsonl", "--baseline",
                    chain / "eval/sft/metrics.json", chain / "eval/sft/generations.jsonl", "--out", tmp_path / "x.json",
                    check=False)
    assert mixed.returncode == 2 and "same judge" in mixed.stderr and "Traceback" not in mixed.stderr


def test_the_reward_step_trains_a_judge_that_evaluation_loads(chain, tmp_path):
    """`prefalign reward` from the SFT checkpoint, then `evaluate-judge` and `evaluate --judge trained`."""
    rm = tmp_path / "reward_model"
    run_cli("reward", "--model", chain / "sft/model", "--train", chain / "data/train.jsonl", "--out", rm,
            "--metrics", tmp_path / "rm.json", "--log-history", tmp_path / "rm_log.jsonl", "--max-steps", "30",
            "--batch-size", "8", "--logging-steps", "5", "--learning-rate", "0.003", "--threads", "1")
    config = json.loads((rm / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and len(config["id2label"]) == 1
    metrics = json.loads((tmp_path / "rm.json").read_text())
    assert metrics["resolved"]["backend"] == "trl" and "RewardTrainer" in metrics["resolved"]["why"]
    assert metrics["train"]["steps"] == 30 and metrics["train"]["examples_within_max_length"] > 0
    assert metrics["settings"]["start"] == "sft"
    run_cli("evaluate-judge", "--judge", "trained", "--reward-model", rm, "--test", chain / "data/test.jsonl",
            "--out", tmp_path / "judge.json", "--bootstrap-samples", "200", "--threads", "1")
    judge = json.loads((tmp_path / "judge.json").read_text())
    m = judge["metrics"]
    assert m["pairs"] == len(read_jsonl(chain / "data/test.jsonl")) and 0 <= m["accuracy"] <= 1
    assert judge["intervals"]["accuracy"]["low"] <= m["accuracy"] <= judge["intervals"]["accuracy"]["high"]
    assert set(judge["per_source"]) == {"hh", "shp"} and m["verifier_pairs"] > 0
    run_cli("evaluate", "--name", "dpo", "--model", chain / "dpo/model", "--reference", chain / "sft/model",
            "--test", chain / "data/test.jsonl", "--metrics", tmp_path / "dpo.json", "--generations",
            tmp_path / "dpo.jsonl", *EVAL, "--judge", "trained", "--reward-model", rm)
    result = json.loads((tmp_path / "dpo.json").read_text())
    assert result["judge"]["kind"] == "trained" and result["judge_choice"]["kind"] == "trained"
    # The verifier still checks the answers of the task prompts, whatever judges them.
    assert result["metrics"]["judge_accuracy"] is not None


def test_report_has_every_section(chain):
    md = (chain / "report/report.md").read_text()
    html = (chain / "report/report.html").read_text()
    for heading in ("Summary", "Evaluation on the held-out split", "Judge win rates", "Training", "Data ledger",
                    "Sample answers", "Resolved settings", "Software and hardware", "Manifest"):
        assert f"## {heading}" in md or f"### {heading}" in md
        assert heading in html
    # Two training-curve figures, the intervals figure and the margin histograms.
    assert html.count("data:image/png;base64,") == 4 and 'id="summary-table"' in html
    assert "http://" not in html and "https://" not in html  # self-contained
    digest = hashlib.sha256((chain / "manifest.json").read_bytes()).hexdigest()
    assert digest in html and digest in md
    for label in ("rewards/accuracies", "KL(policy ‖ reference)", "win rate", "sft sampled", "dpo greedy"):
        assert label in html or label in md, label


def test_report_opens_cleanly_in_chromium(chain):
    import browser

    if not browser.available() and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (CI installs it in .ci/run)")
    seen = browser.inspect_page(chain / "report/report.html",
                                "document.querySelectorAll('#summary-table tbody tr').length")
    assert seen["console_errors"] == []
    assert len(seen["images"]) == 4
    assert all(i["decoded"] and i["naturalWidth"] > 0 for i in seen["images"]), seen["images"]
    assert seen["value"] == 3  # base, sft, dpo


def test_same_seed_same_checkpoint_bytes(chain, tmp_path):
    run_cli("sft", "--base", chain / "model/base", "--train", chain / "data/train.jsonl", "--out", tmp_path / "again",
            "--metrics", tmp_path / "m.json", "--log-history", tmp_path / "h.jsonl",
            "--max-steps", "20", "--batch-size", "8", "--logging-steps", "5", "--threads", "1")
    first = (chain / "sft/model/model.safetensors").read_bytes()
    assert (tmp_path / "again/model.safetensors").read_bytes() == first
    assert (tmp_path / "h.jsonl").read_bytes() == (chain / "sft/log_history.jsonl").read_bytes()


def test_pretrained_source_loads_a_local_checkpoint(chain, tmp_path):
    run_cli("build-base", "--source", "pretrained", "--name-or-path", chain / "sft/model", "--out", tmp_path / "base")
    info = json.loads((tmp_path / "base/prefalign_base.json").read_text())
    assert info["settings"]["source"] == "pretrained" and info["architecture"] == "LlamaForCausalLM"
    assert (tmp_path / "base/model.safetensors").read_bytes() == (chain / "sft/model/model.safetensors").read_bytes()


def test_pretrained_hub_id_needs_a_pinned_revision(tmp_path):
    result = run_cli("build-base", "--source", "pretrained", "--name-or-path", "org/model", "--out", tmp_path / "b",
                     check=False)
    assert result.returncode == 2
    assert "revision: expected a 40-hex-digit commit" in result.stderr and "Traceback" not in result.stderr


def test_bf16_on_cpu_is_refused_before_loading(chain, tmp_path):
    result = run_cli("sft", "--base", chain / "model/base", "--train", chain / "data/train.jsonl",
                     "--out", tmp_path / "x", "--metrics", tmp_path / "m.json", "--log-history", tmp_path / "h.jsonl",
                     "--precision", "bf16", check=False)
    assert result.returncode == 2 and "precision: expected fp32 or auto" in result.stderr


def test_ab_round_trip_puts_the_human_win_rate_in_the_report(chain, tmp_path):
    """export -> a rater fills the sheet -> import -> `prefalign report --ab-result` shows it."""
    import csv

    ab = tmp_path / "ab"
    run_cli("ab", "export", "--sft-generations", chain / "eval/sft/generations.jsonl", "--dpo-generations",
            chain / "eval/dpo/generations.jsonl", "--test", chain / "data/test.jsonl", "--sheet-csv", ab / "sheet.csv",
            "--sheet-html", ab / "sheet.html", "--key", ab / "key.json", "--items", "10",
            "--no-skip-identical")  # 6 DPO steps leave most greedy answers as SFT's
    key = {e["item"]: e for e in json.loads((ab / "key.json").read_text())["key"]}
    with open(ab / "sheet.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):  # the rater prefers DPO on all but the last item
        dpo_side = "A" if key[int(row["item"])]["A"] == "dpo" else "B"
        row["preference"] = dpo_side if i < len(rows) - 1 else ("B" if dpo_side == "A" else "A")
    with open(tmp_path / "ratings.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run_cli("ab", "import", tmp_path / "ratings.csv", "--key", ab / "key.json", "--out", ab / "win_rate.json")
    result = json.loads((ab / "win_rate.json").read_text())
    n = len(rows)
    assert result["win_rate"] == pytest.approx((n - 1) / n)
    run_cli("report", *report_inputs(chain), "--ab-result", ab / "win_rate.json", "--md", tmp_path / "report.md",
            "--html", tmp_path / "report.html")
    low, high = result["interval"]
    line = f"Human win rate of DPO over SFT: {result['win_rate']:.3f} [{low:.3f}, {high:.3f}] (95% interval)"
    assert line in (tmp_path / "report.md").read_text()
    assert "<p id=ab-win-rate>" + line in (tmp_path / "report.html").read_text()
    # Without ratings the report says how to get them; both reports carry the training health.
    plain = (chain / "report/report.md").read_text()
    assert "## Human A/B evaluation" in plain and "Not rated yet" in plain
    assert "## Training health" in plain and "## Training health" in (tmp_path / "report.md").read_text()
