# The run's resolved config: every value the workflow read, each marked with where it came
# from (the preset, the schema default, or the config files).


include: "helpers/config.smk"


rule record_config:
    output:
        resolved="results/config/resolved.yaml",
    log:
        "logs/record_config.log",
    benchmark:
        "benchmarks/record_config.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        resolved=resolved_config(),
    shell:
        "prefalign config record --resolved {params.resolved:q} --out {output.resolved} > {log} 2>&1"
