# Supervised fine-tuning on the chosen replies; the merged output is DPO's reference.


rule train_sft:
    input:
        base=rules.build_base_model.output.model,
        train=rules.split_dataset.output.train,
    output:
        model=directory("results/sft/model"),
        metrics="results/sft/metrics.json",
        log_history="results/sft/log_history.jsonl",
        environment="results/sft/environment.json",
    log:
        main="logs/train_sft.log",
        tensorboard=directory("logs/tensorboard/train_sft"),
    benchmark:
        "benchmarks/train_sft.tsv"
    container:
        training_container()
    threads: config["threads"]
    resources:
        **gpu_resources(),
    params:
        flags=flags("sft"),
        watch=f"{flags('health')} {flags('tracking')}",
        # Resumable checkpoints: not an output, so Snakemake's cleanup of a failed or
        # interrupted job keeps them (prefalign.train.checkpoints); the step deletes them on success.
        checkpoints="results/checkpoints/train_sft",
        launch=launcher(),
    shell:
        "{params.launch} sft --base {input.base} --train {input.train} --out {output.model}"
        " --metrics {output.metrics} --log-history {output.log_history}"
        " --environment {output.environment} --checkpoint-dir {params.checkpoints} {params.flags}"
        " --tensorboard-dir {log.tensorboard} {params.watch} > {log.main} 2>&1"
