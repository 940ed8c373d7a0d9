# Helpers of rules/manifest.smk.

from prefalign.provenance.plan import (
    check_plan_paths,
    plan_argument,
    plan_inputs,
    previous_run_problems,
    workflow_plan,
)

MANIFEST_WILDCARDS = {
    "dataset": DATASETS,
    "model": EVAL_MODELS,
    "card": CARDS,
    "check_file": list(CHECK_FILES),
}
# Rules whose wildcards come in pairs: their jobs, as listed in the config.
MANIFEST_COMBOS = {
    "compare_models": [
        {"model": model, "baseline": baseline}
        for model, baseline in config["eval"]["comparisons"]
    ],
    **ONPOLICY_JOBS,  # rounds of on-policy sampling and DPO (rules/onpolicy.smk)
}
# Not part of the run the manifest records: the `check` target audits a finished run.
# The export (results/export/, target `export`) comes after the manifest, whose sha256 it cites.
MANIFEST_SKIP = (
    "all",
    "stage_check_file",
    "write_manifest",
    "check_expected",
    "check",
    "export_model",
    "export",
    "track_runs",  # tags the tracker runs with the manifest's sha256, after it
)
# The reward-model judge exists only when the run uses one.
if JUDGE.kind != "trained":
    MANIFEST_SKIP += ("train_reward_model",)
if JUDGE.kind == "task":
    MANIFEST_SKIP += ("evaluate_reward_model",)
# The human A/B sheet is made on demand; once ratings are configured it feeds the report.
if not config["ab"]["ratings"]:
    MANIFEST_SKIP += ("export_ab_sheet", "import_ab_ratings")
# The report reads the bounds file only where the config names one (rules/helpers/report.smk).
if not report_weighs_spread():
    MANIFEST_SKIP += ("stage_expected",)
# Without dpo.cache_reference, train_dpo scores the reference itself and nothing reads the pass.
if not config["dpo"]["cache_reference"]:
    MANIFEST_SKIP += ("reference_logps",)

try:
    MANIFEST_PLAN = workflow_plan(
        workflow.rules, MANIFEST_WILDCARDS, config, MANIFEST_SKIP, MANIFEST_COMBOS
    )
    check_plan_paths(MANIFEST_PLAN)
    MANIFEST_PLAN_TEXT = plan_argument(MANIFEST_PLAN)
except ConfigError as error:
    raise WorkflowError(str(error))
