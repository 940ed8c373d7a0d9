# Helpers of rules/onpolicy.smk.

# The rounds' helpers (also read by rules/dpo.smk, rules/report.smk, rules/manifest.smk): which
# checkpoint and pairs each DPO round reads, and the jobs of each round.

PAIRS = SETTINGS["dpo_pairs"]
ROUNDS = PAIRS.rounds


def dpo_start(round):
    """The checkpoint DPO round `round` starts from, samples from and is referenced to."""
    if int(round) == 1:
        return rules.train_sft.output.model
    return f"results/dpo/round-{int(round) - 1}/model"


def dpo_train_pairs(round):
    """The pairs DPO round `round` trains on (dpo.pairs)."""
    if PAIRS.pairs == "offline":
        return rules.split_dataset.output.train
    folder = f"results/onpolicy/round-{int(round)}"
    return (
        f"{folder}/pairs.jsonl"
        if PAIRS.pairs == "onpolicy"
        else f"{folder}/mixed.jsonl"
    )


def sampling_resources():
    """One GPU (of gpu.model) for the sampling job when the config trains on GPUs: it is one process."""
    return {**gpu_resources(), "gpu": 1} if config["gpu"]["count"] > 0 else {}


def onpolicy_inputs(wildcards):
    return {
        "policy": dpo_start(wildcards.round),
        "train": rules.split_dataset.output.train,
        # the run's judge as an input (like rules/eval.smk), so a new reward model resamples
        **judge_model_input(),
    }


def dpo_round_inputs(wildcards):
    return {
        "sft": dpo_start(wildcards.round),
        "train": dpo_train_pairs(wildcards.round),
    }


def dpo_round_params():
    """train_dpo's params, with a checkpoint folder per round."""
    return {
        **training_params("train_dpo"),
        "checkpoints": lambda wildcards: f"results/checkpoints/train_dpo_round/round-{wildcards.round}",
    }


def onpolicy_report_files():
    """Per-round files the report's rounds section reads: pair stats, and the DPO metrics of earlier rounds."""
    if not PAIRS.samples:
        return {}
    rounds = range(1, ROUNDS + 1)
    files = {
        "onpolicy_stats": [f"results/onpolicy/round-{r}/stats.json" for r in rounds],
        "dpo_round_metrics": [
            f"results/dpo/round-{r}/metrics.json" for r in range(1, ROUNDS)
        ],
    }
    if PAIRS.pairs == "mixed":
        files["mix_stats"] = [f"results/onpolicy/round-{r}/mixed.json" for r in rounds]
    return files


# The jobs of these rules, for the manifest (rules/manifest.smk): none when DPO trains offline.
ONPOLICY_JOBS = {
    "generate_onpolicy_pairs": [
        {"round": str(r)} for r in range(1, ROUNDS + 1) if PAIRS.samples
    ],
    "mix_dpo_pairs": [
        {"round": str(r)} for r in range(1, ROUNDS + 1) if PAIRS.pairs == "mixed"
    ],
    "train_dpo_round": [{"round": str(r)} for r in range(1, ROUNDS)],
}
