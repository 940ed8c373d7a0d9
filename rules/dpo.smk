# Direct preference optimization of the SFT checkpoint (ref_model=None: SFT is the reference).
# With dpo.pairs onpolicy or mixed this is the last round (rules/onpolicy.smk): it starts from,
# and is referenced to, the previous round's model (SFT when dpo.rounds is 1) and trains on
# its round's pairs.
# The reference's log-probs of the DPO train pairs are computed once (reference_logps), so a change
# of beta, loss or steps reruns train_dpo alone.


include: "helpers/dpo.smk"


rule train_dpo:
    input:
        unpack(reference_input),
        sft=dpo_start(ROUNDS),
        train=dpo_train_pairs(ROUNDS),
    output:
        **training_outputs("results/dpo", adapter=config["dpo"]["use_lora"]),
    log:
        main="logs/train_dpo.log",
        tensorboard=directory("logs/tensorboard/train_dpo"),
    benchmark:
        "benchmarks/train_dpo.tsv"
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        **training_params("train_dpo"),
        reference=lambda wildcards, input: (
            f"--reference-logps {input.reference}"
            if "reference" in input.keys()
            else ""
        ),
    shell:
        training_shell("dpo", "sft", " {params.reference}")


# The reference (the SFT checkpoint) scored on exactly the file train_dpo trains on.
rule reference_logps:
    input:
        sft=rules.train_dpo.input.sft,
        train=rules.train_dpo.input.train,
    output:
        logps="results/reference/logps.json",
        environment="results/reference/environment.json",
    log:
        "logs/reference_logps.log",
    benchmark:
        "benchmarks/reference_logps.tsv"
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        flags=flags("reference"),
    shell:
        "prefalign reference-logps --sft {input.sft} --train {input.train}"
        " --out {output.logps} --environment {output.environment} {params.flags} > {log} 2>&1"
