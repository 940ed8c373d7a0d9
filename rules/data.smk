# Raw datasets -> canonical records, rejects ledgers and stats -> train/test split.


rule generate_synthetic_raw:
    output:
        raw="results/raw/{dataset}.jsonl",
    log:
        "logs/generate_synthetic_raw/{dataset}.log",
    benchmark:
        "benchmarks/generate_synthetic_raw/{dataset}.tsv"
    wildcard_constraints:
        dataset="|".join(SYNTHETIC),
    container:
        container_image("cpu")
    params:
        flags=lambda wildcards: flags(f"synth:{wildcards.dataset}"),
    shell:
        "prefalign synth --out {output.raw} {params.flags} > {log} 2>&1"


rule normalize_dataset:
    input:
        raw=raw_input,
    output:
        records="results/data/{dataset}/normalized.jsonl",
        rejects="results/data/{dataset}/rejects.jsonl",
        stats="results/data/{dataset}/stats.json",
    log:
        "logs/normalize_dataset/{dataset}.log",
    benchmark:
        "benchmarks/normalize_dataset/{dataset}.tsv"
    container:
        container_image("cpu")
    params:
        flags=lambda wildcards: f"{flags(f'normalize:{wildcards.dataset}')} {flags('filters')}",
    shell:
        "prefalign normalize --input {input.raw} --records {output.records}"
        " --rejects {output.rejects} --stats {output.stats} {params.flags} > {log} 2>&1"


rule split_dataset:
    input:
        normalized=expand(rules.normalize_dataset.output.records, dataset=DATASETS),
    output:
        train="results/data/train.jsonl",
        test="results/data/test.jsonl",
        rejects="results/data/rejects.jsonl",
        stats="results/data/stats.json",
    log:
        "logs/split_dataset.log",
    benchmark:
        "benchmarks/split_dataset.tsv"
    container:
        container_image("cpu")
    params:
        flags=f"{flags('split')} {'--dedup' if config['data']['dedup'] else '--no-dedup'}",
    shell:
        "prefalign split --inputs {input.normalized} --train {output.train} --test {output.test}"
        " --rejects {output.rejects} --stats {output.stats} {params.flags} > {log} 2>&1"
