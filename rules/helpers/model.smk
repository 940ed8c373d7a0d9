# Helpers of rules/model.smk.


def base_model_inputs(wildcards):
    # The tiny tokenizer is trained on the train split; a pretrained model needs no data.
    if config["model"]["source"] == "tiny":
        return {"train": rules.split_dataset.output.train}
    return {}
