"""`prefalign init`: write a commented, schema-valid config.yaml for a model and dataset(s).

    prefalign init --model tiny --dataset synthetic
    prefalign init --model Qwen/Qwen2.5-0.5B-Instruct@<commit> --dataset data/hh.jsonl.gz:50000

--model: `tiny` (the small Llama built offline), a local model folder (hub layout), or a hub
id, pinned to a commit with `@<40 hex>` or `--revision` (looked up on the hub when neither is
given and the hub is reachable). --dataset (repeatable): `synthetic` (the demo's two synthetic
datasets), `synth_hh` / `synth_shp` (one of them), or a local file (JSON Lines, optionally .gz)
whose format (hh-rlhf, shp, pairs) is read from its first record or given with --format;
`:N` after any of them caps it at N raw records (the config's `sample` shorthand).

--preset defaults to this machine's: cpu-demo without a CUDA GPU, else by the GPU's memory
(prefalign.presets.pick); the tiny model always trains with cpu-demo's values (they are for
a model trained from scratch), with gpu.count 1 on a GPU machine. A pretrained model on the
CPU gets the practice's LoRA learning rates instead of cpu-demo's from-scratch ones.

The written file is checked like the workflow checks it (schema, preset, the steps' own
checks) before it is written. Raises ConfigError for a model or dataset it cannot use, and
refuses to overwrite a file without --force.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import __version__, presets
from prefalign.config.resolve import resolve
from prefalign.errors import ConfigError
from prefalign.hashing import is_commit
from prefalign.runtime import Machine

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
SYNTHETIC = {"synth_hh": {"format": "hh-rlhf", "source": "synthetic", "records": 3000},
             "synth_shp": {"format": "shp", "source": "synthetic", "records": 1500}}
# The practice's learning rates for a pretrained model trained on the CPU (cpu-demo's are for
# a model trained from scratch): LoRA SFT at 2e-4, DPO at 5e-6, AdamW beta2 0.95.
PRETRAINED_ON_CPU = {
    "sft": {"use_lora": True, "learning_rate": 2e-4, "adam_beta2": 0.95},
    "dpo": {"learning_rate": 5e-6, "adam_beta2": 0.95, "loss_type": ["sigmoid"], "loss_weights": None},
}


# ---------------------------------------------------------------- model and datasets

def model_section(spec: str, revision: str | None) -> dict:
    if spec == "tiny":
        return {"source": "tiny"}
    if "@" in spec and not Path(spec).exists():
        spec, revision = spec.split("@", 1)
    path = Path(spec)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model: expected a model folder with config.json (the hub's layout), got {spec!r}")
        return {"source": "pretrained", "name_or_path": spec}
    if not HUB_ID.match(spec):
        raise ConfigError(f"model: expected tiny, a local model folder or a hub id (owner/name), got {spec!r}")
    if revision is None:
        revision = hub_commit(spec)
    if not is_commit(revision):
        raise ConfigError(f"revision: expected a 40-hex-digit commit of {spec} (branches and tags move), "
                          f"got {revision!r}")
    return {"source": "pretrained", "name_or_path": spec, "revision": revision}


def hub_commit(model_id: str) -> str:
    """The hub's current commit of `model_id`; ConfigError when the hub cannot be asked."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise ConfigError(f"revision: expected a commit to pin {model_id} to (`--model {model_id}@<commit>` or "
                          "--revision); the hub is offline here (HF_HUB_OFFLINE), so it cannot be looked up")
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(model_id).sha
    except Exception as exc:  # noqa: BLE001  (any hub failure becomes advice, not a traceback)
        raise ConfigError(f"revision: could not look up the current commit of {model_id} on the hub "
                          f"({type(exc).__name__}: {exc}); pass --revision <commit>") from None


def split_cap(spec: str) -> tuple[str, int | None]:
    """`name:50000` -> (name, 50000); a spec without a numeric tail has no cap."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and head:
        return head, int(tail)
    return spec, None


def detect_format(path: Path) -> str:
    """hh-rlhf, shp or pairs, from the first record of a JSON Lines file (optionally .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), None)
        record = json.loads(first) if first else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"dataset {path}: expected JSON Lines to read the format from ({exc}); "
                          "pass --format") from None
    if not isinstance(record, dict):
        raise ConfigError(f"dataset {path}: expected a JSON object on its first line; pass --format")
    if {"history", "human_ref_A", "human_ref_B"} <= set(record):
        return "shp"
    if {"prompt", "chosen", "rejected"} <= set(record):
        return "pairs"
    if {"chosen", "rejected"} <= set(record) and "Human:" in str(record["chosen"]):
        return "hh-rlhf"
    raise ConfigError(f"dataset {path}: cannot tell the format from the first record's keys "
                      f"({', '.join(sorted(record))}); pass --format hh-rlhf, shp or pairs")


def dataset_entries(specs: list[str], fmt: str | None) -> tuple[dict, list[str]]:
    """(datasets section, sample entries) for the --dataset specs."""
    datasets, sample = {}, []
    for spec in specs:
        name_or_path, cap = split_cap(spec)
        if name_or_path == "synthetic":
            chosen = dict(SYNTHETIC)
        elif name_or_path in SYNTHETIC:
            chosen = {name_or_path: SYNTHETIC[name_or_path]}
        else:
            path = Path(name_or_path)
            if not path.is_file():
                hint = (" (hub datasets: download the file, or write a `source: hub` entry by hand)"
                        if HUB_ID.match(name_or_path) else "")
                raise ConfigError(f"dataset: expected synthetic, synth_hh, synth_shp or a local file, "
                                  f"got {name_or_path!r}{hint}")
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", path.name.split(".")[0]).strip("_") or "data"
            chosen = {name: {"format": fmt or detect_format(path), "source": "local", "path": str(path)}}
        for name, entry in chosen.items():
            if name in datasets:
                raise ConfigError(f"dataset: {name} is given twice")
            datasets[name] = dict(entry)
            if cap is not None:
                sample.append(f"{name}:{cap}")
    return datasets, sample


# ---------------------------------------------------------------- the file

@dataclass
class Plan:
    model: dict
    datasets: dict
    sample: list[str]
    preset: str
    gpu_count: int | None  # set explicitly when it differs from the preset's
    overrides: dict = field(default_factory=dict)  # section -> {key: value}, beyond the preset
    notes: list[str] = field(default_factory=list)


def plan(args: argparse.Namespace, machine: Machine | None) -> Plan:
    """What to write; `machine` is None when --preset was given (nothing is detected then)."""
    model = model_section(args.model, args.revision)
    datasets, sample = dataset_entries(args.dataset, args.format)
    machine = machine or Machine(cuda=False)
    notes = [f"Machine: {machine.describe()}."] if args.preset is None else [f"Preset {args.preset} as asked."]
    preset = args.preset or presets.pick(machine.memory_gib)
    gpu_count = None
    overrides: dict = {}
    if model["source"] == "tiny" and preset != "cpu-demo":
        notes.append(f"The tiny model trains from scratch: preset cpu-demo's values (not {preset}'s, which are "
                     "for pretrained models), on the GPU.")
        preset, gpu_count = "cpu-demo", 1
    elif model["source"] == "pretrained" and preset == "cpu-demo":
        overrides = PRETRAINED_ON_CPU
        notes.append("A pretrained model on the CPU: LoRA SFT at 2e-4 and DPO at 5e-6 (the practice) instead of "
                     "cpu-demo's from-scratch learning rates; expect hours, not minutes.")
    if args.preset is None and machine.cuda:
        notes.append(f"Preset chosen from the GPU's memory ({machine.memory_gib:.0f} GiB).")
    return Plan(model, datasets, sample, preset, gpu_count, overrides, notes)


def yaml_value(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def render(plan: Plan, command: str) -> str:
    """The config text: every choice commented, the preset's values listed for reference."""
    lines = [
        f"# prefalign config, written by `{command}` (prefalign {__version__}).",
        "#",
        "# Check it: prefalign config check config.yaml    Every resolved value: prefalign config show config.yaml",
        "# Run it in this folder: snakemake -s <prefalign checkout>/Snakefile --cores all",
        "# Every key, its meaning and its default: schemas/config.schema.yaml.",
        "#",
        *[f"# {note}" for note in plan.notes],
        "",
        f"# Preset {plan.preset}: {presets.DESCRIPTIONS[plan.preset]}.",
        "# It fills every key of gpu, sft, dpo and eval that this file does not set; set one to override it:",
    ]
    for section, keys in presets.values(plan.preset).items():
        lines.append(f"#   {section}: " + ", ".join(f"{k} {yaml_value(v)}" for k, v in keys.items()))
    lines += [f"preset: {plan.preset}", "", "seed: 1234",
              "threads: 2  # torch threads per step; on the CPU part of the result, so fixed here", ""]
    if plan.gpu_count is not None:
        lines += ["gpu:", f"  count: {plan.gpu_count}  # training jobs each take one GPU", ""]
    lines.append("model:")
    comments = {"source": "tiny: built offline; pretrained: name_or_path",
                "revision": "the commit loaded, so reruns load the same weights"}
    for key, value in plan.model.items():
        comment = f"  # {comments[key]}" if key in comments else ""
        lines.append(f"  {key}: {yaml_value(value)}{comment}")
    lines += ["", "datasets:"]
    for name, entry in plan.datasets.items():
        lines.append(f"  {name}: {yaml_value(entry)}")
    if plan.sample:
        lines += ["# Caps: read at most N raw records of a dataset (datasets.<name>.max_records).",
                  f"sample: {yaml_value(plan.sample)}"]
    for section, keys in plan.overrides.items():
        lines += ["", f"{section}:  # beyond the preset (see the note at the top)"]
        lines += [f"  {key}: {yaml_value(value)}" for key, value in keys.items()]
    lines += [
        "",
        "health:  # the training health monitor: a NaN/inf loss or a spike stops training; the rest warn",
        "  spike_factor: 3.0  # stop when a logged loss exceeds 3x the median of the previous 5",
        "  accuracy_high: 0.8  # dpo: above this preference accuracy suggests overfitting",
        "  accuracy_low: 0.55  # dpo: at or below this after accuracy_after_steps: too little learning",
        "  kl_max: 50.0  # dpo: nats per reply of drift from the reference",
        "",
        "tracking:",
        "  tensorboard: true  # event files in logs/tensorboard/<rule>/",
        "  wandb: false  # true also logs to Weights & Biases (pip install wandb; wandb login)",
        "",
        "ab:  # blind human A/B of SFT vs DPO: `snakemake export_ab_sheet`, then set ratings",
        "  items: 50",
        "  ratings: null",
    ]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="tiny, a local model folder, or a hub id (owner/name[@commit])")
    parser.add_argument("--dataset", action="append", required=True, metavar="NAME_OR_PATH[:N]",
                        help="synthetic, synth_hh, synth_shp or a local JSONL file; :N caps it at N raw records "
                             "(repeatable)")
    parser.add_argument("--preset", choices=presets.NAMES,
                        help="preset (default: this machine's: cpu-demo without a CUDA GPU, else by GPU memory)")
    parser.add_argument("--revision", help="hub model: the commit to pin (40 hex digits)")
    parser.add_argument("--format", choices=["hh-rlhf", "shp", "pairs"], help="format of local dataset files "
                                                                              "(default: read from the first record)")
    parser.add_argument("--out", type=Path, default=Path("config.yaml"), help="output file (default: config.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def main(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.force:
        raise ConfigError(f"out: {args.out} exists; pass --force to overwrite it or --out another file")
    machine = Machine.detect() if args.preset is None else None
    chosen = plan(args, machine)
    command = "prefalign init " + " ".join(
        [f"--model {args.model}", *[f"--dataset {d}" for d in args.dataset]]
        + ([f"--preset {args.preset}"] if args.preset else []))
    text = render(chosen, command)
    # Checked as the workflow will check it, before anything is written.
    with tempfile.TemporaryDirectory(prefix="prefalign-init-") as scratch:
        draft = Path(scratch) / "config.yaml"
        draft.write_text(text, encoding="utf-8")
        resolve([draft])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: preset {chosen.preset}, model {chosen.model.get('name_or_path', 'tiny')}, "
          f"datasets {', '.join(chosen.datasets)}" + (f", sample {', '.join(chosen.sample)}" if chosen.sample else ""))
    for note in chosen.notes:
        print(f"  {note}")
