# Supervised fine-tuning on the chosen replies; the merged output is DPO's reference.


rule train_sft:
    input:
        base=rules.build_base_model.output.model,
        train=rules.split_dataset.output.train,
    output:
        **training_outputs("results/sft"),
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
        **training_params("train_sft"),
    shell:
        training_shell("sft", "base")
