# report.md and a self-contained report.html (also flagged for `snakemake --report`).


include: "helpers/report.smk"


# A step in a container sees the run's folder, not the workflow's: the report reads the run's own
# copy of the bounds file, which also keeps with the run the noise floor its verdict weighed. The
# file is a param, not an input: the manifest step, in its container, hashes every job's inputs.
# Its sha256 among the params reruns the copy when the file changes (Snakemake's params trigger).
rule stage_expected:
    output:
        expected="results/config/expected.yaml",
    log:
        "logs/stage_expected.log",
    localrule: True
    params:
        source=lambda wildcards: config["check"]["expected"],
        sha256=lambda wildcards: file_sha256(expected_file()),  # rules/helpers/check.smk
    run:
        copy_into_run(expected_file(), output.expected, log[0], params.sha256)


rule render_report:
    input:
        unpack(expected_input),
        **ab_report_inputs(),
        **judge_eval_outputs(),
        **onpolicy_report_files(),
        eval_metrics=expand(rules.evaluate_model.output.metrics, model=EVAL_MODELS),
        generations=expand(rules.evaluate_model.output.generations, model=EVAL_MODELS),
        pairs=expand(rules.evaluate_model.output.pairs, model=EVAL_MODELS),
        comparisons=comparison_outputs(),
        dataset_stats=expand(rules.normalize_dataset.output.stats, dataset=DATASETS),
        split_stats=rules.split_dataset.output.stats,
        sft_metrics=rules.train_sft.output.metrics,
        sft_log=rules.train_sft.output.log_history,
        dpo_metrics=rules.train_dpo.output.metrics,
        dpo_log=rules.train_dpo.output.log_history,
        base=rules.build_base_model.output.model,
        environment=rules.train_dpo.output.environment,
    output:
        md=report("results/report/report.md", category="Report"),
        html=report("results/report/report.html", category="Report"),
    log:
        "logs/render_report.log",
    benchmark:
        "benchmarks/render_report.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=flags("report"),
        ab=lambda wildcards, input: (
            f"--ab-result {input.ab_result}" if "ab_result" in input.keys() else ""
        ),
        judge_eval=lambda wildcards, input: (
            f"--judge-eval {input.judge_eval}" if "judge_eval" in input.keys() else ""
        ),
        expected=lambda wildcards, input: (
            f"--expected {input.expected}" if "expected" in input.keys() else ""
        ),
        rounds=lambda wildcards, input: " ".join(
            f"--{key.replace('_', '-')} {' '.join(input[key])}"
            for key in ("onpolicy_stats", "mix_stats", "dpo_round_metrics")
            if key in input.keys() and input[key]
        ),
    shell:
        "prefalign report --eval-metrics {input.eval_metrics} --generations {input.generations}"
        " --pairs {input.pairs} --comparisons {input.comparisons}"
        " --dataset-stats {input.dataset_stats} --split-stats {input.split_stats}"
        " --sft-metrics {input.sft_metrics} --sft-log {input.sft_log}"
        " --dpo-metrics {input.dpo_metrics} --dpo-log {input.dpo_log}"
        " --base-info {input.base}/prefalign_base.json --environment {input.environment}"
        " --md {output.md} --html {output.html} {params.flags} {params.ab} {params.judge_eval} {params.expected}"
        " {params.rounds} > {log} 2>&1"
