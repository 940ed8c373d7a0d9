"""What a resolved config runs: the datasets, the model, and every job's settings flags.

`prefalign config check FILE` prints the summary and `prefalign config plan FILE` every job
with the flags its rule passes to `prefalign <step>`; both come from the one resolution
(prefalign.config.resolve) the Snakefile uses, and tests/config/test_config_plan.py holds them equal
to the shell commands `snakemake --configfile FILE --dry-run --printshellcmds` runs.

Jobs are named by rule and wildcard (`normalize_dataset[hh]`); the flags are composed the way
rules/*.smk compose them from the steps' settings (`flags(...)` in rules/common.smk).
"""

from __future__ import annotations

from prefalign.config.resolve import ResolvedConfig
from prefalign.settings import to_cli_flags


def flags(resolved: ResolvedConfig, key: str) -> str:
    return to_cli_flags(resolved.settings[key].to_dict())


def dataset_origin(dataset: dict) -> str:
    """Where a dataset's raw rows come from, in words."""
    if dataset["source"] == "local":
        text = dataset["path"]
    elif dataset["source"] == "hub":
        text = f"hub {dataset['hub_id']}@{dataset['revision']}" + (f" [{dataset['split']}]" if dataset["split"] else "")
    else:
        text = f"synthetic, {dataset['records']} records"
    if dataset.get("max_records") is not None:
        text += f", first {dataset['max_records']} rows"
    if dataset.get("cap") is not None:
        text += f", at most {dataset['cap']} pairs in the mix"
    return text


def jobs(resolved: ResolvedConfig) -> dict[str, dict]:
    """{job: {"step": CLI step, "flags": settings flags}} of every job the workflow runs."""
    config = resolved.config
    out: dict[str, dict] = {}
    for name, dataset in config["datasets"].items():
        if dataset["source"] == "synthetic":
            out[f"generate_synthetic_raw[{name}]"] = {"step": "synth", "flags": flags(resolved, f"synth:{name}")}
        out[f"normalize_dataset[{name}]"] = {
            "step": "normalize", "flags": f"{flags(resolved, f'normalize:{name}')} {flags(resolved, 'filters')}"}
    out["split_dataset"] = {"step": "split", "flags": flags(resolved, "split")}
    out["build_base_model"] = {"step": "build-base", "flags": flags(resolved, "model")}
    watch = f"{flags(resolved, 'health')} {flags(resolved, 'tracking')}"
    out["train_sft"] = {"step": "sft", "flags": flags(resolved, "sft"), "watch": watch}
    # What DPO trains on, round by round (rules/onpolicy.smk): samples of each round's policy, and
    # with mixed pairs a mix; the rounds before the last write results/dpo/round-<r>/.
    pairs = resolved.settings["dpo_pairs"]
    onpolicy = resolved.settings["onpolicy"].to_dict()
    for r in range(1, pairs.rounds + 1) if pairs.samples else ():
        out[f"generate_onpolicy_pairs[{r}]"] = {
            "step": "onpolicy", "flags": to_cli_flags(onpolicy, [k for k in onpolicy if k != "round"])}
        if pairs.pairs == "mixed":
            out[f"mix_dpo_pairs[{r}]"] = {"step": "onpolicy", "flags": flags(resolved, "mix")}
        if r < pairs.rounds:
            out[f"train_dpo_round[{r}]"] = {"step": "dpo", "flags": flags(resolved, "dpo"), "watch": watch}
    if config["dpo"]["cache_reference"]:
        out["reference_logps"] = {"step": "reference-logps", "flags": flags(resolved, "reference")}
    out["train_dpo"] = {"step": "dpo", "flags": flags(resolved, "dpo"), "watch": watch}
    judge = resolved.settings["judge"]
    if judge.kind == "trained":
        out["train_reward_model"] = {"step": "reward", "flags": flags(resolved, "reward"), "watch": watch}
    if "pair_reward" in resolved.settings:  # the pair judge of on-policy DPO, when it is trained
        out["train_pair_judge"] = {"step": "reward", "flags": flags(resolved, "pair_reward"), "watch": watch}
    if judge.kind != "task":
        out["evaluate_reward_model"] = {"step": "evaluate-judge", "flags": flags(resolved, "judge_eval")}
    for model in config["eval"]["models"]:
        out[f"evaluate_model[{model}]"] = {"step": "evaluate", "flags": flags(resolved, f"eval:{model}")}
    for model, baseline in config["eval"]["comparisons"]:
        out[f"compare_models[{model}_vs_{baseline}]"] = {"step": "compare", "flags": flags(resolved, "compare")}
    for card in ["sft", "dpo"] + (["dpo-adapter"] if config["dpo"]["use_lora"] else []):
        out[f"write_model_card[{card}]"] = {"step": "card", "flags": flags(resolved, "card")}
    out["render_report"] = {"step": "report", "flags": flags(resolved, "report")}
    return out


def summary(resolved: ResolvedConfig) -> list[str]:
    """The lines `config check` prints: datasets, model, GPUs and the jobs, one line each."""
    config = resolved.config
    model = config["model"]
    if model["source"] == "tiny":
        model_text = "tiny (built offline, tokenizer trained on the train split)"
    else:
        model_text = model["name_or_path"] + (f" at {model['revision']}" if model.get("revision") else "")
    counts: dict[str, list[str]] = {}
    for job in jobs(resolved):
        rule, _, wildcard = job.partition("[")
        counts.setdefault(rule, []).append(wildcard.rstrip("]"))
    job_text = ", ".join(rule + (f" ({', '.join(w)})" if any(w) else "") for rule, w in counts.items())
    lines = ["datasets:"]
    lines += [f"  {name}: {d['format']}, {dataset_origin(d)}" for name, d in config["datasets"].items()]
    lines += [f"model: {model_text}", f"GPUs per training job: {config['gpu']['count']}", f"jobs: {job_text}"]
    return lines
