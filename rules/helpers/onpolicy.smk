# Helpers of rules/onpolicy.smk.

# The rounds' helpers (also read by rules/dpo.smk, rules/report.smk, rules/manifest.smk): which
# checkpoint and pairs each DPO round reads, and the jobs of each round.

PAIRS = SETTINGS["dpo_pairs"]
ROUNDS = PAIRS.rounds
# The judge that picks the pairs (onpolicy.judge resolved): never the evaluation judge's model trained
# on the same data (prefalign.evaluation.judges.choose_judges); None when DPO trains offline.
PAIR_JUDGE = SETTINGS["judges"].pairs


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


def pair_judge_input():
    """{"reward_model": folder} of the pair judge: the trained one (rule train_pair_judge), or a local folder
    onpolicy.reward_model names (an input, so a new reward model resamples); {} for the task judge or a hub id.
    """
    if PAIR_JUDGE is None or PAIR_JUDGE.kind == "task":
        return {}
    if PAIR_JUDGE.kind == "trained":
        return {"reward_model": rules.train_pair_judge.output.model}
    return (
        {"reward_model": PAIR_JUDGE.reward_model}
        if Path(PAIR_JUDGE.reward_model).is_dir()
        else {}
    )


def pair_judge_flag(wildcards, input):
    """--reward-model of the trained pair judge (a setting of the config's in every other case)."""
    if PAIR_JUDGE is not None and PAIR_JUDGE.kind == "trained":
        return f"--reward-model {input.reward_model}"
    return ""


def onpolicy_inputs(wildcards):
    return {
        "policy": dpo_start(wildcards.round),
        "train": rules.split_dataset.output.train,
        **pair_judge_input(),
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


# The jobs of these rules (and of the pair judge's training, rules/reward.smk), for the manifest
# (rules/manifest.smk): none when DPO trains offline.
ONPOLICY_JOBS = {
    "generate_onpolicy_pairs": [
        {"round": str(r)} for r in range(1, ROUNDS + 1) if PAIRS.samples
    ],
    "mix_dpo_pairs": [
        {"round": str(r)} for r in range(1, ROUNDS + 1) if PAIRS.pairs == "mixed"
    ],
    "train_dpo_round": [{"round": str(r)} for r in range(1, ROUNDS)],
    "train_pair_judge": (
        [{}] if PAIR_JUDGE is not None and PAIR_JUDGE.kind == "trained" else []
    ),
}
