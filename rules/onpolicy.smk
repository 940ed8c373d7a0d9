# On-policy preference pairs (dpo.pairs: onpolicy or mixed) and iterative DPO (dpo.rounds).
#
# Round r: the policy (SFT for round 1, else round r-1's DPO model) answers each train prompt
# onpolicy.samples_per_prompt times, the pair judge (onpolicy.judge; never the evaluation judge's
# model trained on the same data) scores every answer, and
# the best answer is paired with the worst (results/onpolicy/round-<r>/); DPO then trains on
# those pairs (mixed: plus offline ones), starting at and referenced to that same policy.
# Rounds before the last write results/dpo/round-<r>/ (train_dpo_round); the last is
# train_dpo in rules/dpo.smk, so everything downstream reads results/dpo/ as before.


include: "helpers/onpolicy.smk"


rule generate_onpolicy_pairs:
    input:
        unpack(onpolicy_inputs),
    output:
        pairs="results/onpolicy/round-{round}/pairs.jsonl",
        ledger="results/onpolicy/round-{round}/ledger.jsonl",
        samples="results/onpolicy/round-{round}/samples.jsonl",
        stats="results/onpolicy/round-{round}/stats.json",
    log:
        "logs/generate_onpolicy_pairs/round-{round}.log",
    benchmark:
        "benchmarks/generate_onpolicy_pairs/round-{round}.tsv"
    wildcard_constraints:
        round=r"[1-9][0-9]*",
    container:
        training_container()
    threads: config["threads"]
    resources:
        **sampling_resources(),
    params:
        # `round` comes from the wildcard: the other settings are the same in every round.
        flags=to_cli_flags(
            SETTINGS["onpolicy"].to_dict(),
            [k for k in SETTINGS["onpolicy"].to_dict() if k != "round"],
        ),
        reward_model=pair_judge_flag,
    shell:
        # fd 3: Snakemake's console, for the step's progress lines (prefalign.progress)
        "PREFALIGN_CONSOLE=3:generate_onpolicy_pairs[{wildcards.round}] prefalign onpolicy sample"
        " --policy {input.policy} --train {input.train} --round {wildcards.round}"
        " --pairs {output.pairs} --ledger {output.ledger} --samples {output.samples} --stats {output.stats}"
        " {params.reward_model} {params.flags} 3>&2 > {log} 2>&1"


rule mix_dpo_pairs:
    input:
        onpolicy=rules.generate_onpolicy_pairs.output.pairs,
        offline=rules.split_dataset.output.train,
    output:
        train="results/onpolicy/round-{round}/mixed.jsonl",
        stats="results/onpolicy/round-{round}/mixed.json",
    log:
        "logs/mix_dpo_pairs/round-{round}.log",
    benchmark:
        "benchmarks/mix_dpo_pairs/round-{round}.tsv"
    wildcard_constraints:
        round=r"[1-9][0-9]*",
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=flags("mix"),
    shell:
        "prefalign onpolicy mix --onpolicy {input.onpolicy} --offline {input.offline} --out {output.train}"
        " --stats {output.stats} {params.flags} > {log} 2>&1"


rule train_dpo_round:
    input:
        unpack(dpo_round_inputs),
    output:
        **training_outputs(
            "results/dpo/round-{round}", adapter=config["dpo"]["use_lora"]
        ),
    log:
        main="logs/train_dpo_round/round-{round}.log",
        tensorboard=directory("logs/tensorboard/train_dpo_round/round-{round}"),
    benchmark:
        "benchmarks/train_dpo_round/round-{round}.tsv"
    wildcard_constraints:
        round=r"[1-9][0-9]*",
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        **dpo_round_params(),
    shell:
        training_shell("dpo", "sft")
