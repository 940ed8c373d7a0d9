# Human A/B evaluation of SFT vs DPO answers, outside `all`: `snakemake export_ab_sheet`
# writes the blind sheet; once config ab.ratings names the filled CSV, the win rate joins the report.


include: "helpers/ab.smk"


rule export_ab_sheet:
    input:
        sft=expand(rules.evaluate_model.output.generations, model="sft"),
        dpo=expand(rules.evaluate_model.output.generations, model="dpo"),
        test=rules.split_dataset.output.test,
    output:
        csv="results/ab/sheet.csv",
        html="results/ab/sheet.html",
        key="results/ab/key.json",
    log:
        "logs/export_ab_sheet.log",
    benchmark:
        "benchmarks/export_ab_sheet.tsv"
    container:
        container_image("cpu")
    threads: 1
    params:
        flags=flags("ab"),
    shell:
        "prefalign ab export --sft-generations {input.sft} --dpo-generations {input.dpo} --test {input.test}"
        " --sheet-csv {output.csv} --sheet-html {output.html} --key {output.key} {params.flags} > {log} 2>&1"


rule import_ab_ratings:
    input:
        ratings=config["ab"]["ratings"] or [],
        key=rules.export_ab_sheet.output.key,
    output:
        win_rate="results/ab/win_rate.json",
    log:
        "logs/import_ab_ratings.log",
    benchmark:
        "benchmarks/import_ab_ratings.tsv"
    container:
        container_image("cpu")
    threads: 1
    shell:
        "prefalign ab import {input.ratings} --key {input.key} --out {output.win_rate} > {log} 2>&1"
