# Direct preference optimization of the SFT checkpoint (ref_model=None: SFT is the reference).


rule train_dpo:
    input:
        sft=rules.train_sft.output.model,
        train=rules.split_dataset.output.train,
    output:
        **dpo_outputs(),
    log:
        "logs/train_dpo.log",
    benchmark:
        "benchmarks/train_dpo.tsv"
    container:
        config["containers"]["cpu"]
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        flags=flags("dpo"),
        # Resumable checkpoints: not an output, so Snakemake's cleanup of a failed or
        # interrupted job keeps them (prefalign.checkpoints); the step deletes them on success.
        checkpoints="results/checkpoints/train_dpo",
        launch=launcher(),
        adapter=lambda wildcards, output: (
            f"--adapter-out {output.adapter}" if "adapter" in output.keys() else ""
        ),
    shell:
        "{params.launch} dpo --sft {input.sft} --train {input.train} --out {output.model} {params.adapter}"
        " --metrics {output.metrics} --log-history {output.log_history}"
        " --environment {output.environment} --checkpoint-dir {params.checkpoints}"
        " {params.flags} > {log} 2>&1"
