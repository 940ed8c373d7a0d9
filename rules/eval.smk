# Held-out evaluation of each checkpoint against its reference (base->base, sft->base, dpo->sft).


rule evaluate_model:
    input:
        unpack(eval_inputs),
    output:
        metrics="results/eval/{model}/metrics.json",
        generations="results/eval/{model}/generations.jsonl",
    log:
        "logs/evaluate_model/{model}.log",
    benchmark:
        "benchmarks/evaluate_model/{model}.tsv"
    container:
        container_image("cpu")
    threads: config["threads"]
    params:
        flags=lambda wildcards: flags(f"eval:{wildcards.model}"),
    shell:
        "prefalign evaluate --model {input.model} --reference {input.reference} --test {input.test}"
        " --metrics {output.metrics} --generations {output.generations} {params.flags} > {log} 2>&1"
