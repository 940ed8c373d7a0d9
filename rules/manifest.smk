# results/manifest.json: sha256 and provenance of every artifact (prefalign.provenance.manifest).
#
# Included last: the job plan is read from the rules defined before it, so every job's
# outputs are covered, those of rules added later too (a rule whose wildcards have no
# values in MANIFEST_WILDCARDS stops the workflow here). Before any rule runs, the plan is
# also checked: no job may write outside results/, logs/, benchmarks/.


include: "helpers/manifest.smk"


rule write_manifest:
    input:
        plan_inputs(MANIFEST_PLAN),
    output:
        # update(): Snakemake keeps the previous manifest for the step, which holds the run's
        # files to it (and restores it when the step refuses).
        manifest=update(MANIFEST_PLAN["manifest"]),
    log:
        "logs/write_manifest.log",
    benchmark:
        "benchmarks/write_manifest.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        plan=MANIFEST_PLAN_TEXT,
        # a function: the folder of the Snakefile, not a path prefix of the inputs (some live under it)
        workflow_dir=lambda wildcards: workflow.basedir,
    shell:
        "prefalign manifest --plan {params.plan:q} --workflow-dir {params.workflow_dir:q}"
        " --out {output.manifest} > {log} 2>&1"
