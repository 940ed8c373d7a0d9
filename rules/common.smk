# Config validation, the steps' typed settings, and target lists.
# Validation runs once, here, before any rule: a bad key stops the workflow with the file,
# line and key, what was expected, and the key's description.

import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from prefalign.config.schema import (
    apply_presets,
    check_config,
    load_schema,
    step_settings,
)
from prefalign.config.command import key_paths as config_key_paths
from prefalign.evaluation.evaluate import REFERENCES
from prefalign.errors import ConfigError
from prefalign.settings import to_cli_flags

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    check_config(config, load_schema(SCHEMA), workflow.configfiles)
    # The preset fills what the config leaves unset, before the schema's defaults: validation,
    # params (rerun detection) and the steps' settings all see the resolved values.
    USER_KEYS = sorted(config_key_paths(config))
    PRESET = apply_presets(config, workflow.configfiles)
except ConfigError as error:
    raise WorkflowError(str(error))

validate(config, str(SCHEMA))  # fills in the schema's defaults

try:
    SETTINGS = step_settings(config, workflow.configfiles)
except ConfigError as error:
    raise WorkflowError(str(error))

DATASETS = list(config["datasets"])
SYNTHETIC = [
    name for name in DATASETS if config["datasets"][name]["source"] == "synthetic"
]
EVAL_MODELS = list(config["eval"]["models"])
# eval.judge resolved (auto included) from the config alone: the DAG's inputs depend on it.
JUDGE = SETTINGS["judge"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    model="|".join(EVAL_MODELS),


def flags(key):
    """The CLI flags of step settings `key` (see prefalign.config.schema.step_settings)."""
    return to_cli_flags(SETTINGS[key].to_dict())


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


def base_model_inputs(wildcards):
    # The tiny tokenizer is trained on the train split; a pretrained model needs no data.
    if config["model"]["source"] == "tiny":
        return {"train": rules.split_dataset.output.train}
    return {}


def checkpoint(name):
    return {
        "base": rules.build_base_model.output.model,
        "sft": rules.train_sft.output.model,
        "dpo": rules.train_dpo.output.model,
    }[name]


def judge_model_input():
    """{"reward_model": folder} of the run's reward-model judge: the trained one, or a local folder the
    config names (an input, so a change to it reruns what it judged); {} for the task judge or a hub id.
    """
    if JUDGE.kind == "trained":
        return {"reward_model": rules.train_reward_model.output.model}
    if JUDGE.kind == "reward_model" and Path(config["eval"]["reward_model"]).is_dir():
        return {"reward_model": config["eval"]["reward_model"]}
    return {}


def judge_model_flag(wildcards, input):
    """--reward-model of the trained judge (a setting of the config's in every other case)."""
    if JUDGE.kind == "trained":
        return f"--reward-model {input.reward_model}"
    return ""


def eval_inputs(wildcards):
    return {
        "model": checkpoint(wildcards.model),
        "reference": checkpoint(REFERENCES[wildcards.model]),
        "test": rules.split_dataset.output.test,
        **judge_model_input(),
    }


def judge_eval_outputs():
    """The reward-model judge's held-out accuracy, for report and check (none for the task judge)."""
    if JUDGE.kind == "task":
        return {}
    return {"judge_eval": rules.evaluate_reward_model.output.metrics}


def comparison_outputs():
    """results/eval/compare/<model>_vs_<baseline>.json of every pair in eval.comparisons."""
    return [
        f"results/eval/compare/{model}_vs_{baseline}.json"
        for model, baseline in config["eval"]["comparisons"]
    ]


def expected_file():
    """check.expected; a relative path is taken from the workflow's folder."""
    path = Path(config["check"]["expected"])
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)


def gpu_resources():
    """Snakemake resources of the training rules: gpu (and gpu_model) when config gpu.count > 0."""
    gpu = config["gpu"]
    if gpu["count"] == 0:
        return {}
    resources = {"gpu": gpu["count"]}
    if gpu["model"]:
        resources["gpu_model"] = gpu["model"]
    return resources


def container_image(name):
    """Image containers.<name> of the config; a local file is relative to the workflow's folder."""
    image = config["containers"][name]
    if "://" in image:
        return image
    return str(Path(workflow.basedir) / image)


def training_container():
    """Image of the training and evaluation rules: containers.gpu when config gpu.count > 0
    (evaluation uses a GPU when it sees one)."""
    return container_image("gpu" if config["gpu"]["count"] > 0 else "cpu")


def launcher():
    """The command that starts a training step: `prefalign`, or one process per GPU
    through `accelerate launch` (DDP) when config gpu.count > 1."""
    count = config["gpu"]["count"]
    if count > 1:
        return (
            f"accelerate launch --num_processes {count} --num_machines 1"
            " --mixed_precision no --dynamo_backend no -m prefalign"
        )
    return "prefalign"


def training_params(rule_name):
    """The params train_sft and train_dpo share: the step's settings, the health monitor's and
    trackers' flags, the checkpoint folder and the launcher."""
    step = rule_name.removeprefix("train_")
    return {
        "flags": flags(step),
        "watch": f"{flags('health')} {flags('tracking')}",
        # Resumable checkpoints: not an output, so Snakemake's cleanup of a failed or
        # interrupted job keeps them (prefalign.train.checkpoints); the step deletes them on success.
        "checkpoints": f"results/checkpoints/{rule_name}",
        "launch": launcher(),
        "adapter": lambda wildcards, output: (
            f"--adapter-out {output.adapter}" if "adapter" in output.keys() else ""
        ),
    }


def training_shell(step, start):
    """The command of a training rule: `prefalign <step> --<start> {input.<start>} ...` (prefalign.train.step)."""
    return (
        f"{{params.launch}} {step} --{start} {{input.{start}}} --train {{input.train}}"
        " --out {output.model} {params.adapter} --metrics {output.metrics}"
        " --log-history {output.log_history} --environment {output.environment}"
        " --checkpoint-dir {params.checkpoints} {params.flags}"
        " --tensorboard-dir {log.tensorboard} {params.watch} > {log.main} 2>&1"
    )


def dpo_outputs():
    outputs = {
        "model": directory("results/dpo/model"),
        "metrics": "results/dpo/metrics.json",
        "log_history": "results/dpo/log_history.jsonl",
        "environment": "results/dpo/environment.json",
    }
    if config["dpo"]["use_lora"]:
        outputs["adapter"] = directory("results/dpo/adapter")
    return outputs


def resolved_config():
    """The resolved config with what the preset filled (the record_config rule's record)."""
    return json.dumps(
        {"config": config, "preset": PRESET, "user_keys": USER_KEYS}, sort_keys=True
    )


def ab_report_inputs():
    """The human A/B win rate for the report, once config ab.ratings names the filled sheet."""
    if config["ab"]["ratings"] is None:
        return {}
    return {"ab_result": rules.import_ab_ratings.output.win_rate}


def all_targets():
    return [
        rules.render_report.output.md,
        rules.render_report.output.html,
        rules.record_config.output.resolved,
        rules.write_manifest.output.manifest,
    ]
