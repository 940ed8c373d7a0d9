# Artifact evaluation: the run's metrics against expected bounds (check.expected).
# `snakemake --cores all check` prints a table of every metric against its bounds and fails
# when any is out; it is not part of the default target.


include: "helpers/check.smk"


rule check_expected:
    input:
        **judge_eval_outputs(),
        expected=expected_file(),
        eval_metrics=expand(rules.evaluate_model.output.metrics, model=EVAL_MODELS),
        comparisons=comparison_outputs(),
    output:
        table=report("results/check/expected.md", category="Check"),
    log:
        "logs/check_expected.log",
    benchmark:
        "benchmarks/check_expected.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        judge_eval=lambda wildcards, input: (
            f"--judge-eval {input.judge_eval}" if "judge_eval" in input.keys() else ""
        ),
    shell:
        # tee: the table goes to the terminal as well as to the log, pass or fail.
        "prefalign check --expected {input.expected} --eval-metrics {input.eval_metrics}"
        " --comparisons {input.comparisons} {params.judge_eval} --table {output.table} 2>&1 | tee {log}"


rule check:
    input:
        rules.check_expected.output.table,
