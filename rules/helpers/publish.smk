# Helpers of rules/publish.smk.

# The model cards (rules/publish.smk): the merged SFT and DPO checkpoints, and DPO's adapter.
CARDS = ["sft", "dpo"] + (["dpo-adapter"] if config["dpo"]["use_lora"] else [])


def card_inputs(wildcards):
    """What the card of checkpoint `card` describes: the folder, its training record, and the
    run's evaluation of it where eval.models lists it."""
    step = wildcards.card.split("-")[0]
    train = rules.train_sft if step == "sft" else rules.train_dpo
    inputs = {
        "model": train.output.get(
            "adapter" if wildcards.card == "dpo-adapter" else "model"
        ),
        "train_metrics": train.output.metrics,
        "environment": train.output.environment,
        "base": rules.build_base_model.output.model,
        "config": rules.record_config.output.resolved,
    }
    if step in EVAL_MODELS:
        inputs["eval_metrics"] = expand(rules.evaluate_model.output.metrics, model=step)
    inputs["comparisons"] = [
        f"results/eval/compare/{model}_vs_{baseline}.json"
        for model, baseline in config["eval"]["comparisons"]
        if step in (model, baseline)
    ]
    return inputs


def card_optional_flags(wildcards, input):
    """--eval-metrics and --comparisons of `prefalign card`, when the run has them."""
    text = (
        f"--eval-metrics {input.eval_metrics}" if "eval_metrics" in input.keys() else ""
    )
    if input.comparisons:
        text += " --comparisons " + " ".join(input.comparisons)
    return text
