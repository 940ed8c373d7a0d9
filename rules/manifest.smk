# results/manifest.json: sha256 and provenance of every artifact (prefalign.manifest).
#
# Included last: the job plan is read from the rules defined before it, so every job's
# outputs are covered, those of rules added later too. A rule whose wildcards have no
# known values stops the workflow here (add them to MANIFEST_WILDCARDS). The plan is
# checked before any rule runs: no job may write outside results/, logs/, benchmarks/.

import json

from prefalign.manifest import check_plan_paths, plan_inputs

MANIFEST_WILDCARDS = {"dataset": DATASETS, "model": EVAL_MODELS}


def named_paths(files):
    """{name: [paths]} of a Snakemake file list (unnamed entries under "_")."""
    named = {}
    for name, value in files._allitems():
        values = value if isinstance(value, list) else [value]
        named.setdefault(name or "_", []).extend(str(f) for f in values)
    return named


def manifest_job(rule, wildcards):
    """One job of `rule` as the manifest records it: what it read, wrote and was given."""
    inputs, _, _, _ = rule.expand_input(wildcards)
    outputs, _ = rule.expand_output(wildcards)
    params, _ = rule.expand_params(wildcards, inputs, outputs, job=None)
    benchmark = rule.expand_benchmark(wildcards)
    return {
        "rule": rule.name,
        "wildcards": dict(wildcards),
        "inputs": named_paths(inputs),
        "outputs": {name: paths[0] for name, paths in named_paths(outputs).items()},
        "directories": [str(f) for f in outputs if f.is_directory],
        "log": [str(f) for f in rule.expand_log(wildcards)],
        "benchmark": str(benchmark) if benchmark else None,
        "params": dict(params.items()),
        "container": rule.expand_container_img(wildcards),
    }


def manifest_plan():
    jobs = []
    for rule in workflow.rules:
        if rule.name in ("all", "write_manifest"):
            continue
        names = sorted(rule.wildcard_names)
        unknown = [n for n in names if n not in MANIFEST_WILDCARDS]
        if unknown:
            raise WorkflowError(
                f"rules/manifest.smk: rule {rule.name} has wildcards {unknown} with no known values;"
                " add them to MANIFEST_WILDCARDS so the manifest covers its jobs"
            )
        combos = [{}]
        for name in names:
            combos = [{**c, name: v} for c in combos for v in MANIFEST_WILDCARDS[name]]
        for combo in combos:
            outputs, _ = rule.expand_output(combo)
            if all(rule.is_producer(str(f)) for f in outputs):  # wildcard constraints hold
                jobs.append(manifest_job(rule, combo))
    return {"jobs": jobs, "config": config, "manifest": "results/manifest.json"}


MANIFEST_PLAN = manifest_plan()
try:
    check_plan_paths(MANIFEST_PLAN)
except ConfigError as error:
    raise WorkflowError(str(error))


rule write_manifest:
    input:
        plan_inputs(MANIFEST_PLAN),
    output:
        manifest=MANIFEST_PLAN["manifest"],
    log:
        "logs/write_manifest.log",
    benchmark:
        "benchmarks/write_manifest.tsv"
    container:
        config["containers"]["cpu"]
    params:
        plan=json.dumps(MANIFEST_PLAN, sort_keys=True, default=str),
        workflow_dir=workflow.basedir,
    shell:
        "prefalign manifest --plan {params.plan:q} --workflow-dir {params.workflow_dir:q}"
        " --out {output.manifest} > {log} 2>&1"
