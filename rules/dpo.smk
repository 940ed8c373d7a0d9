# Direct preference optimization of the SFT checkpoint (ref_model=None: SFT is the reference).
# With dpo.pairs onpolicy or mixed this is the last round (rules/onpolicy.smk): it starts from,
# and is referenced to, the previous round's model (SFT when dpo.rounds is 1) and trains on
# its round's pairs.


rule train_dpo:
    input:
        sft=dpo_start(ROUNDS),
        train=dpo_train_pairs(ROUNDS),
    output:
        **dpo_outputs(),
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
        flags=flags("dpo"),
        watch=f"{flags('health')} {flags('tracking')}",
        # Resumable checkpoints: not an output, so Snakemake's cleanup of a failed or
        # interrupted job keeps them (prefalign.train.checkpoints); the step deletes them on success.
        checkpoints="results/checkpoints/train_dpo",
        launch=launcher(),
        adapter=lambda wildcards, output: (
            f"--adapter-out {output.adapter}" if "adapter" in output.keys() else ""
        ),
    shell:
        "{params.launch} dpo --sft {input.sft} --train {input.train} --out {output.model} {params.adapter}"
        " --metrics {output.metrics} --log-history {output.log_history}"
        " --environment {output.environment} --checkpoint-dir {params.checkpoints} {params.flags}"
        " --tensorboard-dir {log.tensorboard} {params.watch} > {log.main} 2>&1"
