# Publishing: a model card (the Hub's format) for each trained checkpoint, part of every run
# and of the manifest; and, on demand, `snakemake --cores all export`: each checkpoint laid
# out for upload with its card as README.md, after the manifest, whose sha256 it cites.
#
# The cards are files of their own, not README.md inside the model folders: a card needs the
# evaluation, which reads the model folder, so writing into that folder afterwards would
# change what the evaluation was made from (prefalign.publish.card says more).


include: "helpers/publish.smk"


rule write_model_card:
    input:
        unpack(card_inputs),
    output:
        card=report(
            "results/cards/{card}/README.md",
            category="Model cards",
            labels={"model": "{card}", "file": "model card"},
        ),
    log:
        "logs/write_model_card/{card}.log",
    benchmark:
        "benchmarks/write_model_card/{card}.tsv"
    wildcard_constraints:
        card="|".join(CARDS),
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=flags("card"),
        optional=card_optional_flags,
    shell:
        "prefalign card --kind {wildcards.card} --model {input.model}"
        " --train-metrics {input.train_metrics} --base-info {input.base}/prefalign_base.json"
        " --environment {input.environment} --config {input.config} {params.optional}"
        " --out {output.card} {params.flags} > {log} 2>&1"


rule export_model:
    input:
        unpack(audited),  # the finished run, audited before any job runs (rules/helpers/check.smk)
        model=lambda wildcards: card_inputs(wildcards)["model"],
        card=rules.write_model_card.output.card,
        manifest="results/manifest.json",
    output:
        folder=directory("results/export/{card}"),
    log:
        "logs/export_model/{card}.log",
    benchmark:
        "benchmarks/export_model/{card}.tsv"
    wildcard_constraints:
        card="|".join(CARDS),
    container:
        container_image("cpu")
    threads: 1
    shell:
        "prefalign export --model {input.model} --card {input.card} --manifest {input.manifest}"
        " --out {output.folder} > {log} 2>&1"


rule export:
    input:
        expand(rules.export_model.output.folder, card=CARDS),


# With tracking.wandb or tracking.mlflow: the manifest's sha256 added to the training runs
# (prefalign.publish.track), after the manifest; the run ids come from the steps' records.
rule track_runs:
    input:
        manifest="results/manifest.json",
    output:
        tagged="logs/tracking/manifest.json",
    log:
        "logs/track_runs.log",
    benchmark:
        "benchmarks/track_runs.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        records=["logs/tracking/train_sft.json", "logs/tracking/train_dpo.json"],
    shell:
        "prefalign track --manifest {input.manifest} --records {params.records}"
        " --out {output.tagged} > {log} 2>&1"
