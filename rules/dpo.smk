# Direct preference optimization of the SFT checkpoint (ref_model=None: SFT is the reference).


rule train_dpo:
    input:
        sft=rules.train_sft.output.model,
        train=rules.split_dataset.output.train,
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
        **training_params("train_dpo"),
    shell:
        training_shell("dpo", "sft")
