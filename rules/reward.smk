# The reward-model judges (eval.judge or onpolicy.judge trained, or auto on data the task verifier
# cannot check), trained on the train split's pairs from the checkpoint reward.start names: the
# evaluation judge (train_reward_model) and the pair judge that picks DPO's on-policy pairs
# (train_pair_judge); when both are trained, on disjoint parts of the train prompts
# (reward.eval_share). And the evaluation judge's held-out pairwise accuracy (also of a reward
# model the config names: eval.judge reward_model).


include: "helpers/reward.smk"


rule train_reward_model:
    input:
        model=lambda wildcards: checkpoint(config["reward"]["start"]),
        train=rules.split_dataset.output.train,
    output:
        **training_outputs("results/reward_model"),
    log:
        main="logs/train_reward_model.log",
        tensorboard=directory("logs/tensorboard/train_reward_model"),
    benchmark:
        "benchmarks/train_reward_model.tsv"
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        flags=flags("reward"),
        watch=f"{flags('health')} {flags('tracking')}",
        checkpoints="results/checkpoints/train_reward_model",
        launch=launcher(),
        adapter="",
    shell:
        training_shell("reward", "model")


rule train_pair_judge:
    input:
        model=lambda wildcards: checkpoint(config["reward"]["start"]),
        train=rules.split_dataset.output.train,
    output:
        **training_outputs("results/pair_judge"),
    log:
        main="logs/train_pair_judge.log",
        tensorboard=directory("logs/tensorboard/train_pair_judge"),
    benchmark:
        "benchmarks/train_pair_judge.tsv"
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        # lazily: the settings exist only when the pair judge is trained (then this rule runs)
        flags=lambda wildcards: flags("pair_reward"),
        watch=f"{flags('health')} {flags('tracking')}",
        checkpoints="results/checkpoints/train_pair_judge",
        launch=launcher(),
        adapter="",
    shell:
        training_shell("reward", "model")


rule evaluate_reward_model:
    input:
        **judge_model_input(),
        test=rules.split_dataset.output.test,
    output:
        metrics=report(
            "results/eval/judge.json",
            category="Evaluation",
            labels={"model": "judge", "file": "held-out accuracy"},
        ),
    log:
        "logs/evaluate_reward_model.log",
    benchmark:
        "benchmarks/evaluate_reward_model.tsv"
    container:
        training_container()
    threads: config["threads"]
    params:
        flags=lambda wildcards: flags("judge_eval"),
        reward_model=judge_model_flag,
    shell:
        "prefalign evaluate-judge --test {input.test} --out {output.metrics} {params.reward_model}"
        " {params.flags} > {log} 2>&1"
