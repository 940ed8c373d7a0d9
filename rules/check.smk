# Artifact evaluation of a finished run: `snakemake --cores all check` (not part of the default
# target) first refuses edited, missing or stray artifacts (against results/manifest.json),
# then compares the artifacts' digests with the published ones (check.digests), then prints a
# table of every metric against its bounds (check.expected) and fails when any is out. The two
# files from outside the run are copied into results/check/ first: a step in a container sees the
# run's folder, not the workflow's.


include: "helpers/check.smk"


rule stage_check_file:
    input:
        lambda wildcards: CHECK_FILES[wildcards.check_file],
    output:
        "results/check/{check_file}",
    log:
        "logs/stage_check_file/{check_file}.log",
    wildcard_constraints:
        check_file="|".join(re.escape(name) for name in CHECK_FILES),
    localrule: True
    run:
        copy_into_run(input[0], output[0], log[0], file_sha256(input[0]))


rule check_expected:
    input:
        unpack(audited_run),
        **judge_eval_outputs(),
        **digests_input(),
        expected=staged_check_file("expected.yaml"),
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
        digests=lambda wildcards, input: (
            f"--digests {input.digests}" if "digests" in input.keys() else ""
        ),
        manifest="results/manifest.json",
    shell:
        # tee: the table goes to the terminal as well as to the log, pass or fail.
        "prefalign check --manifest {params.manifest} {params.digests}"
        " --expected {input.expected} --eval-metrics {input.eval_metrics}"
        " --comparisons {input.comparisons} {params.judge_eval} --table {output.table} 2>&1 | tee {log}"


rule check:
    input:
        rules.check_expected.output.table,
