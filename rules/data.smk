# Raw datasets -> canonical records, rejects ledgers and stats -> one cleaned mix, split.
#
# The DAG stays acyclic: the data rules depend on the config only, never on results/model.
# A pretrained model's tokenizer (for data.max_tokens) is loaded from the config's pinned
# name_or_path; the tiny model's tokenizer is trained on the train split these rules make,
# so for it the token filter counts ChatML bytes (an upper bound; prefalign.data.token_count).


include: "helpers/data.smk"


rule generate_synthetic_raw:
    output:
        raw="results/raw/{dataset}.jsonl",
    log:
        "logs/generate_synthetic_raw/{dataset}.log",
    benchmark:
        "benchmarks/generate_synthetic_raw/{dataset}.tsv"
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=lambda wildcards: flags(f"synth:{wildcards.dataset}"),
    shell:
        "prefalign synth --out {output.raw} {params.flags} > {log} 2>&1"


rule normalize_dataset:
    input:
        unpack(normalize_inputs),
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
    threads: 1
    params:
        raw=lambda wildcards, input: (
            f"--input {input.raw}" if "raw" in input.keys() else ""
        ),
        flags=lambda wildcards: f"{flags(f'normalize:{wildcards.dataset}')} {flags('filters')}",
    shell:
        "prefalign normalize {params.raw} --records {output.records}"
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
    threads: config["threads"]
    params:
        flags=flags("split"),
    shell:
        "prefalign split --inputs {input.normalized} --train {output.train} --test {output.test}"
        " --rejects {output.rejects} --stats {output.stats} {params.flags} > {log} 2>&1"
