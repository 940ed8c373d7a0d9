# The base model: a tiny Llama and tokenizer built offline, or a pinned pretrained model.


include: "helpers/model.smk"


rule build_base_model:
    input:
        unpack(base_model_inputs),
    output:
        model=directory("results/model/base"),
        environment="results/model/environment.json",
    log:
        "logs/build_base_model.log",
    benchmark:
        "benchmarks/build_base_model.tsv"
    container:
        container_image("cpu")
    threads: config["threads"]
    params:
        flags=flags("model"),
        train=lambda wildcards, input: (
            f"--train {input.train}" if "train" in input.keys() else ""
        ),
    shell:
        "prefalign build-base {params.train} --out {output.model}"
        " --environment {output.environment} {params.flags} > {log} 2>&1"
