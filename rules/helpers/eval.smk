# Helpers of rules/eval.smk.


def eval_inputs(wildcards):
    return {
        "model": checkpoint(wildcards.model),
        "reference": checkpoint(REFERENCES[wildcards.model]),
        "test": rules.split_dataset.output.test,
        **judge_model_input(),
    }


def comparison_outputs():
    """results/eval/compare/<model>_vs_<baseline>.json of every pair in eval.comparisons."""
    return [
        f"results/eval/compare/{model}_vs_{baseline}.json"
        for model, baseline in config["eval"]["comparisons"]
    ]
