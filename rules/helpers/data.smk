# Helpers of rules/data.smk.


def normalize_inputs(wildcards):
    """The raw file (none for a hub dataset) and a local tokenizer folder, when one counts tokens."""
    dataset = config["datasets"][wildcards.dataset]
    inputs = {}
    if dataset["source"] == "synthetic":
        inputs["raw"] = rules.generate_synthetic_raw.output.raw.format(
            dataset=wildcards.dataset
        )
    elif dataset["source"] == "local":
        inputs["raw"] = dataset["path"]
    tokenizer = SETTINGS["filters"].tokenizer
    if SETTINGS["filters"].max_tokens and Path(tokenizer).is_dir():
        inputs["tokenizer"] = tokenizer
    return inputs
