# prefalign: raw preference datasets -> filtered JSONL -> SFT -> DPO -> evaluation report.
#
# This file is the table of contents. Shared helpers and target lists live in rules/common.smk;
# each stage's rules in rules/<stage>.smk, which includes its own helpers (rules/helpers/<stage>.smk);
# each rule is one call of the `prefalign` CLI. The config is
# the --configfile(s) given, else the embedded demo config.yaml (rules/common.smk resolves it).

from snakemake.utils import min_version

min_version("9.0")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/sft.smk"
include: "rules/onpolicy.smk"  # dpo.pairs onpolicy / mixed, dpo.rounds
include: "rules/dpo.smk"
include: "rules/reward.smk"
include: "rules/eval.smk"
include: "rules/ab.smk"
include: "rules/config.smk"
include: "rules/report.smk"
include: "rules/check.smk"  # target `check` (not in `all`): results vs expected bounds
include: "rules/publish.smk"  # model cards; target `export` (not in `all`): upload folders
include: "rules/manifest.smk"  # last: it reads the plan of the rules above


rule all:
    default_target: True
    input:
        all_targets(),
        run_artifacts,  # every artifact, checked against the last run's manifest (rules/manifest.smk)
