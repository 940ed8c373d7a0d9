# The config, resolved once, here, before any rule: a bad key stops the workflow with the file,
# line and key, what was expected, and the key's description. Then the steps' typed settings
# and the target lists.
#
# A config is what runs: the files given with --configfile (merged in order), or, when none is
# given, the embedded demo (config.yaml); --config key=value overrides apply on top. The same
# function resolves it for `prefalign config check|show` and the manifest (prefalign.config.resolve).

import hashlib
import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from prefalign.config.resolve import merge, read_files, resolve_mapping
from prefalign.config.schema import load_schema
from prefalign.evaluation.evaluate import REFERENCES
from prefalign.errors import ConfigError
from prefalign.settings import to_cli_flags

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"
DEMO_CONFIG = Path(workflow.basedir) / "config.yaml"
CONFIG_FILES = [Path(f) for f in workflow.configfiles] or [DEMO_CONFIG]

try:
    given = config if workflow.configfiles else merge(read_files(CONFIG_FILES), config)
    RESOLVED = resolve_mapping(given, CONFIG_FILES, load_schema(SCHEMA))
except ConfigError as error:
    raise WorkflowError(str(error))

validate(RESOLVED.config, str(SCHEMA))  # Snakemake's own check of the resolved config
config.clear()
config.update(RESOLVED.config)
SETTINGS, PRESET, USER_KEYS = RESOLVED.settings, RESOLVED.preset, RESOLVED.user_keys

DATASETS = list(config["datasets"])
SYNTHETIC = [
    name for name in DATASETS if config["datasets"][name]["source"] == "synthetic"
]
EVAL_MODELS = list(config["eval"]["models"])


def one_of(names):
    """A wildcard pattern matching exactly these names; matching nothing when there are none
    (an empty alternation would match the empty string)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


# eval.judge resolved (auto included) from the config alone: the DAG's inputs depend on it. The
# judge that picks DPO's on-policy pairs (onpolicy.judge) is another: rules/helpers/onpolicy.smk.
JUDGE = SETTINGS["judge"]


wildcard_constraints:
    dataset=one_of(DATASETS),
    model=one_of(EVAL_MODELS),


def flags(key):
    """The CLI flags of step settings `key` (see prefalign.config.steps.step_settings)."""
    return to_cli_flags(SETTINGS[key].to_dict())


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
    through `accelerate launch` (DDP) when config gpu.count > 1. --multi_gpu: without it
    accelerate starts one process (silently) where fewer than two CUDA GPUs are visible;
    with it, always N (torchrun; gloo on the CPU, tests/train/test_ddp_cpu.py)."""
    count = config["gpu"]["count"]
    if count > 1:
        return (
            f"accelerate launch --num_processes {count} --num_machines 1"
            " --mixed_precision no --dynamo_backend no --multi_gpu -m prefalign"
        )
    return "prefalign"


def training_outputs(folder, adapter=False):
    """What a training step writes under `folder`, named as the rules name it: the model folder, its metrics, log
    history and environment record, and (`adapter`) the LoRA adapter folder."""
    outputs = {
        "model": directory(f"{folder}/model"),
        "metrics": f"{folder}/metrics.json",
        "log_history": f"{folder}/log_history.jsonl",
        "environment": f"{folder}/environment.json",
    }
    if adapter:
        outputs["adapter"] = directory(f"{folder}/adapter")
    return outputs


def training_params(rule_name):
    """The params train_sft and train_dpo share: the step's settings, the health monitor's and
    trackers' flags, the checkpoint folder and the launcher."""
    step = rule_name.removeprefix("train_")
    return {
        "flags": flags(step),
        "watch": f"{flags('health')} {flags('tracking')}{tracker_record(rule_name)}",
        # Resumable checkpoints: not an output, so Snakemake's cleanup of a failed or
        # interrupted job keeps them (prefalign.train.checkpoints); the step deletes them on success.
        "checkpoints": f"results/checkpoints/{rule_name}",
        "launch": launcher(),
        "adapter": lambda wildcards, output: (
            f"--adapter-out {output.adapter}" if "adapter" in output.keys() else ""
        ),
    }


def trackers_on():
    return config["tracking"]["wandb"] or config["tracking"]["mlflow"]


def tracker_record(rule_name):
    """--tracker-record of a training step when W&B or MLflow is on: rule track_runs reads it."""
    return f" --tracker-record logs/tracking/{rule_name}.json" if trackers_on() else ""


def training_shell(step, start, extra=""):
    """The command of a training rule: `prefalign <step> --<start> {input.<start>} ...` (prefalign.train.step)."""
    return (
        f"PREFALIGN_CONSOLE=3 {{params.launch}} {step} --{start} {{input.{start}}}"
        " --train {input.train} --out {output.model} {params.adapter}"
        " --metrics {output.metrics} --log-history {output.log_history}"
        " --environment {output.environment} --checkpoint-dir {params.checkpoints}"
        f" {{params.flags}} --tensorboard-dir {{log.tensorboard}} {{params.watch}}{extra}"
        # fd 3: Snakemake's console, for the step's progress lines (prefalign.progress)
        " 3>&2 > {log.main} 2>&1"
    )


def run_artifacts(wildcards):
    """Every artifact of the run, as inputs of `all`. A missing one is rebuilt, and everything made
    from it, where Snakemake alone would call the run done. First the files of the last
    finished run are checked against its manifest: a file changed, added or removed in an
    artifact, or a stray under results/, stops the workflow before any job runs, with the
    command that repairs it (prefalign.provenance.staleness). MANIFEST_PLAN and the two
    helpers come from rules/manifest.smk, included last: this runs when the DAG is built.
    """
    settings = workflow.dag_settings
    problems = previous_run_problems(
        MANIFEST_PLAN, settings.forcerun, settings.forceall
    )
    if problems:
        raise WorkflowError(problems)
    return plan_inputs(MANIFEST_PLAN)


def all_targets():
    return [
        *expand(rules.write_model_card.output.card, card=CARDS),
        rules.render_report.output.md,
        rules.render_report.output.html,
        rules.record_config.output.resolved,
        rules.write_manifest.output.manifest,
        *([rules.track_runs.output.tagged] if trackers_on() else []),
    ]


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_into_run(source, target, log, sha256):
    """A file from outside the run (the workflow's folder, a user's path) copied into it by a local
    job (a step in a container sees the run's folder only), if it still has the sha256 the job was
    planned with: a file changed in between stops the job instead of running on other bounds.
    """
    data = Path(source).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise WorkflowError(f"{source} changed while the workflow ran: run it again")
    Path(target).write_bytes(data)
    Path(log).write_text(f"copied {source} (sha256 {sha256}) to {target}\n")
