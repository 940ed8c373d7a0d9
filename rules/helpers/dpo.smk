# Helpers of rules/dpo.smk.


def reference_input(wildcards):
    """train_dpo reads the cached reference log-probs when config dpo.cache_reference is true."""
    if not config["dpo"]["cache_reference"]:
        return {}
    return {"reference": rules.reference_logps.output.logps}
