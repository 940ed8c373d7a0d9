# Held-out evaluation of each checkpoint against its reference (base->base, sft->base, dpo->sft),
# and judge win rates between evaluated checkpoints (eval.comparisons, default dpo vs sft). The
# judge is eval.judge as resolved in rules/common.smk (JUDGE); a reward-model judge is an input, and
# its held-out accuracy an input of the comparison, whose verdict weighs it.


include: "helpers/eval.smk"


rule evaluate_model:
    input:
        unpack(eval_inputs),
    output:
        metrics=report(
            "results/eval/{model}/metrics.json",
            category="Evaluation",
            labels={"model": "{model}", "file": "metrics"},
        ),
        generations="results/eval/{model}/generations.jsonl",
        pairs="results/eval/{model}/pairs.jsonl",
    log:
        "logs/evaluate_model/{model}.log",
    benchmark:
        "benchmarks/evaluate_model/{model}.tsv"
    container:
        training_container()
    threads: config["threads"]
    params:
        flags=lambda wildcards: flags(f"eval:{wildcards.model}"),
        reward_model=judge_model_flag,
    shell:
        # fd 3: Snakemake's console, for the step's progress lines (prefalign.progress)
        "PREFALIGN_CONSOLE=3:evaluate_model[{wildcards.model}] prefalign evaluate"
        " --model {input.model} --reference {input.reference} --test {input.test}"
        " --metrics {output.metrics} --generations {output.generations} --pairs {output.pairs}"
        " {params.reward_model} {params.flags} 3>&2 > {log} 2>&1"


rule compare_models:
    input:
        # the reward-model judge's held-out accuracy, which the verdict weighs (rules/reward.smk)
        **judge_eval_outputs(),
        model_metrics="results/eval/{model}/metrics.json",
        model_generations="results/eval/{model}/generations.jsonl",
        baseline_metrics="results/eval/{baseline}/metrics.json",
        baseline_generations="results/eval/{baseline}/generations.jsonl",
    output:
        comparison=report(
            "results/eval/compare/{model}_vs_{baseline}.json",
            category="Evaluation",
            labels={"model": "{model} vs {baseline}", "file": "win rate"},
        ),
    log:
        "logs/compare_models/{model}_vs_{baseline}.log",
    benchmark:
        "benchmarks/compare_models/{model}_vs_{baseline}.tsv"
    wildcard_constraints:
        baseline=one_of(EVAL_MODELS),
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=flags("compare"),
        judge_eval=lambda wildcards, input: (
            f"--judge-eval {input.judge_eval}" if "judge_eval" in input.keys() else ""
        ),
    shell:
        "prefalign compare --model {input.model_metrics} {input.model_generations}"
        " --baseline {input.baseline_metrics} {input.baseline_generations}"
        " --out {output.comparison} {params.judge_eval} {params.flags} > {log} 2>&1"
