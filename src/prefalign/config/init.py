"""`prefalign init`: write a commented config for a model and dataset(s) that runs as printed.

    prefalign init --model tiny --dataset synthetic
    prefalign init --model tiny --dataset data/hh-rlhf/train.jsonl.gz --out my.yaml
    prefalign init --model Qwen/Qwen2.5-0.5B-Instruct@<commit> --dataset data/uf.parquet:50000
    prefalign init --model tiny --dataset Anthropic/hh-rlhf@<commit>

--model: `tiny` (the small Llama built offline), a local model folder (hub layout), or a hub
id, pinned to a commit with `@<40 hex>` or `--revision` (looked up on the hub when neither is
given and the hub is reachable).

--dataset (repeatable): `synthetic` (the demo's two synthetic datasets), `synth_hh` /
`synth_shp` (one of them), a local file of any type the data stage reads (JSON Lines, JSON
array, Parquet, each optionally .gz) in any of the five formats, or a hub dataset
`owner/name@<commit>`. A local file's format (and a plain pair file's field names) is read
from its first row (prefalign.data.inspect; --format overrides it); a hub dataset's from its
id where it is one of the public datasets (Anthropic/hh-rlhf, stanfordnlp/SHP,
HuggingFaceH4/ultrafeedback_binarized, OpenAssistant/oasst1 and oasst2), else from --format.
`:N` after any of them caps it at N raw records (the config's `sample` shorthand). Datasets
are named after the file (or its folder, when the file has a generic name such as
train.jsonl), or the hub repository.

Training steps are scaled to the data: init runs the normalize step on each local file (the
default filters) to count its pairs, and sets max_steps to the epochs below at the preset's
batch size and accumulation (a few minutes for a small file, where the preset's fixed step
counts would repeat 300 pairs for tens of epochs). Synthetic data keeps the preset's steps
(they are calibrated on it); a hub dataset, which init does not download, too.

    model            SFT epochs  DPO epochs  reward-model epochs (data without a synthetic set)
    tiny (scratch)   4           1           1                   (the embedded demo's proportions)
    pretrained       1           1           1

(With on-policy DPO on such data two reward models train, the evaluation judge and the pair
judge, each on half the train prompts: its epoch is over its half.)

--preset defaults to this machine's: cpu-demo without a CUDA GPU, else by the GPU's memory
(prefalign.presets.pick); the tiny model always trains with cpu-demo's values (they are for
a model trained from scratch), with gpu.count 1 on a GPU machine. A pretrained model on the
CPU gets the practice's LoRA learning rates instead of cpu-demo's from-scratch ones.

Before writing, the file's steps are weighed against the pairs counted (prefalign.config.
sufficiency): a dataset that yields 0 pairs (a wrong --format, most often) is an error and nothing
is written; too few train pairs for a step's batch, steps that repeat the pairs many times, or a
tiny model with fewer SFT steps than it needs are printed as warnings.

Relative paths in the written file are relative to its folder (prefalign.config.paths), so
the config runs from any folder; its header names the commands that check and run it, a run
folder of its own included (`snakemake --directory runs/<name>`). The file is checked like the
workflow checks it before it is written. Raises ConfigError for a model or dataset it cannot
use, and refuses to overwrite a file without --force.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import __version__, presets
from prefalign.config import sufficiency
from prefalign.config.resolve import resolve
from prefalign.data import inspect
from prefalign.errors import ConfigError
from prefalign.hashing import is_commit
from prefalign.runtime import Machine

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
SYNTHETIC = {"synth_hh": {"format": "hh-rlhf", "source": "synthetic", "records": 3000},
             "synth_shp": {"format": "shp", "source": "synthetic", "records": 1500}}
# The practice's learning rates for a pretrained model trained on the CPU (cpu-demo's are for
# a model trained from scratch): LoRA SFT at 2e-4, DPO at 5e-6, AdamW beta2 0.95.
PRETRAINED_ON_CPU = {
    "sft": {"use_lora": True, "learning_rate": 2e-4, "adam_beta2": 0.95, "max_length": 1024},
    "dpo": {"learning_rate": 5e-6, "adam_beta2": 0.95, "loss_type": ["sigmoid"], "loss_weights": None,
            "max_length": 1024},
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


FORMATS = ("hh-rlhf", "shp", "ultrafeedback", "oasst1", "pairs")
# Generic file and folder names that say nothing about a dataset: the folder above (or the format) names it.
GENERIC = re.compile(r"^(train|test|valid|validation|dev|eval|data|dataset|raw|default|prefs|train_prefs|test_prefs|"
                     r"part|shard|\d+|part-\d+.*|\d+-of-\d+|.*-\d{5}-of-\d{5}|messages|trees)$", re.IGNORECASE)
# Epochs of training per model source (see the module docstring).
# The reward model (the judge eval.judge auto trains on data no verifier knows): about one epoch,
# as the demo's 200 steps of 16 pairs over its ~3,400 train pairs.
EPOCHS = {"tiny": {"sft": 4, "dpo": 1, "reward": 1}, "pretrained": {"sft": 1, "dpo": 1, "reward": 1}}
MIN_STEPS = 10


def dataset_name(path: Path, fmt: str) -> str:
    """A name for a local file: its stem, else the nearest folder with a telling name, else the format."""
    stem = path.name.split(".")[0]
    for candidate in (stem, *[p.name for p in path.resolve().parents][:2]):  # the file, its folder and the one above
        clean = re.sub(r"[^A-Za-z0-9_-]+", "_", candidate).strip("_")
        if clean and not GENERIC.match(clean) and not GENERIC.match(clean.split("_")[0]):
            return clean
    return fmt


@dataclass
class DatasetSpec:
    name: str
    entry: dict  # the datasets.<name> section
    cap: int | None = None
    pairs: int | None = None  # pairs the normalize step keeps (local files), for the step counts
    note: str = ""
    count: sufficiency.Count | None = None  # the normalize step's count of a local file (rows, kept, reasons)


def hub_entry(spec: str, fmt: str | None) -> tuple[str, dict]:
    """`owner/name@<commit>` -> (name, datasets entry)."""
    repo, _, revision = spec.partition("@")
    if not is_commit(revision):
        raise ConfigError(f"dataset {spec}: expected a hub dataset pinned to a commit, owner/name@<40 hex digits> "
                          "(branches and tags move; the dataset's commit history on the hub lists the commits)")
    known = inspect.HUB_FORMATS.get(repo.lower())
    fmt = fmt or (known[0] if known else None)
    if fmt is None:
        raise ConfigError(f"dataset {spec}: not one of the public datasets init knows "
                          f"({', '.join(sorted(inspect.HUB_FORMATS))}); pass --format")
    entry = {"format": fmt, "source": "hub", "hub_id": repo, "revision": revision}
    if known and known[1] != "train":
        entry["split"] = known[1]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", repo.split("/")[1]).lower()
    return name, entry


def local_entry(path: Path, fmt: str | None, out_dir: Path, cap: int | None) -> DatasetSpec:
    guessed, extra = inspect.guess_format(path)
    fmt = fmt or guessed
    if fmt != guessed:
        extra = {}
    entry = {"format": fmt, "source": "local", "path": os.path.relpath(path.resolve(), out_dir.resolve()), **extra}
    stats = inspect.count_pairs(path, fmt, extra, cap)
    note = (f"{path}: {stats['rows']} rows" + (f" ({stats['messages']} messages)" if "messages" in stats else "")
            + f" -> {stats['kept']} pairs with the default filters")
    count = sufficiency.Count(stats["kept"], stats["in"], stats["dropped_by_reason"])
    return DatasetSpec(dataset_name(path, fmt), entry, cap, stats["kept"], note, count)


def dataset_entries(specs: list[str], fmt: str | None, out_dir: Path = Path(".")) -> list[DatasetSpec]:
    """The datasets the --dataset specs name, each with its settings and (local files) pair count."""
    chosen: list[DatasetSpec] = []
    for spec in specs:
        name_or_path, cap = split_cap(spec)
        if name_or_path == "synthetic":
            chosen += [DatasetSpec(name, dict(entry), cap) for name, entry in SYNTHETIC.items()]
        elif name_or_path in SYNTHETIC:
            chosen.append(DatasetSpec(name_or_path, dict(SYNTHETIC[name_or_path]), cap))
        elif Path(name_or_path).is_file():
            chosen.append(local_entry(Path(name_or_path), fmt, out_dir, cap))
        elif HUB_ID.match(name_or_path.partition("@")[0]) and "@" in name_or_path:
            name, entry = hub_entry(name_or_path, fmt)
            chosen.append(DatasetSpec(name, entry, cap, None, f"{name_or_path}: a hub dataset (fetched by the run "
                                                             "with HF_HUB_OFFLINE=0, read from the cache after)"))
        else:
            hint = " (a hub dataset: owner/name@<commit>)" if HUB_ID.match(name_or_path) else ""
            raise ConfigError(f"dataset: expected synthetic, synth_hh, synth_shp, a local file or a hub dataset "
                              f"owner/name@<commit>, got {name_or_path!r}: no such file{hint}")
    names: dict[str, int] = {}
    for d in chosen:  # two files of one name: number them
        if d.name in names:
            names[d.name] += 1
            d.name = f"{d.name}_{names[d.name]}"
        else:
            names[d.name] = 1
    return chosen


def scaled_steps(model_source: str, preset: str, pairs: int, test_fraction: float, gpus: int,
                 steps=("sft", "dpo"), shares: dict[str, float] | None = None) -> dict:
    """{step: {max_steps, epochs, batch}}: the epochs of EPOCHS at the preset's effective batch, over the
    share of the train pairs each step learns from (`shares`; default all)."""
    out = {}
    for step in steps:
        train = max(1, round(pairs * (1 - test_fraction) * (shares or {}).get(step, 1.0)))
        batch = presets.value_of(preset, step, "batch_size") * presets.value_of(
            preset, step, "gradient_accumulation_steps") * max(gpus, 1)
        epochs = EPOCHS["tiny" if model_source == "tiny" else "pretrained"][step]
        out[step] = {"max_steps": max(MIN_STEPS, math.ceil(epochs * train / batch)), "epochs": epochs,
                     "batch": batch, "train": train}
    return out


# ---------------------------------------------------------------- the file

REPO = Path(__file__).resolve().parents[3]  # the checkout (its Snakefile runs the config)


@dataclass
class Plan:
    model: dict
    datasets: list[DatasetSpec]
    preset: str
    gpu_count: int | None  # set explicitly when it differs from the preset's
    overrides: dict = field(default_factory=dict)  # section -> {key: value}, beyond the preset
    notes: list[str] = field(default_factory=list)
    steps: dict = field(default_factory=dict)  # {sft|dpo: {max_steps, epochs, batch, train}} scaled to the data
    judged: bool = True  # whether the task verifier can score this data (else eval.judge auto trains a judge)

    @property
    def sample(self) -> list[str]:
        return [f"{d.name}:{d.cap}" for d in self.datasets if d.cap is not None]


def plan(args: argparse.Namespace, machine: Machine | None, out_dir: Path = Path(".")) -> Plan:
    """What to write; `machine` is None when --preset was given (nothing is detected then)."""
    model = model_section(args.model, getattr(args, "revision", None))
    datasets = dataset_entries(args.dataset, getattr(args, "format", None), out_dir)
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
        overrides = {section: dict(keys) for section, keys in PRETRAINED_ON_CPU.items()}
        notes.append("A pretrained model on the CPU: LoRA SFT at 2e-4 and DPO at 5e-6 (the practice) instead of "
                     "cpu-demo's from-scratch learning rates; expect hours, not minutes.")
    if args.preset is None and machine.cuda:
        notes.append(f"Preset chosen from the GPU's memory ({machine.memory_gib:.0f} GiB).")
    notes += [d.note for d in datasets if d.note]
    steps: dict = {}
    counted = [d for d in datasets if d.pairs is not None]
    if counted and len(counted) == len(datasets):  # every dataset counted: scale the steps to them
        gpus = gpu_count if gpu_count is not None else presets.value_of(preset, "gpu", "count", 0)
        # A reward model is trained (eval.judge auto) only when some dataset is not synthetic.
        judged_by_verifier = all(d.entry["source"] == "synthetic" for d in datasets)
        # With on-policy pairs (the preset's dpo.pairs) on such data two reward models are trained, the evaluation
        # judge and the pair judge, each on its part of the train prompts (reward.eval_share, 0.5 by default).
        onpolicy = presets.value_of(preset, "dpo", "pairs", "offline") != "offline"
        steps = scaled_steps(model["source"], preset, sum(d.pairs for d in counted), 0.1, gpus,
                             ("sft", "dpo") if judged_by_verifier else ("sft", "dpo", "reward"),
                             {"reward": 0.5} if onpolicy else None)
        for step, value in steps.items():
            overrides.setdefault(step, {})["max_steps"] = value["max_steps"]
    elif any(d.entry["source"] != "synthetic" for d in datasets):
        notes.append("Steps: the preset's (a hub dataset is not counted before the run); set sft.max_steps and "
                     "dpo.max_steps to the epochs you want.")
    if model["source"] == "pretrained":
        # Pairs longer than training's max_length would be cut (or, prompt too long, dropped by TRL
        # without a word): the token filter ledgers them instead, counted with the model's tokenizer.
        max_length = overrides.get("dpo", {}).get("max_length") or presets.value_of(preset, "dpo", "max_length")
        overrides = {"data": {"max_tokens": max_length}, **overrides}
    judged = all(d.entry["source"] == "synthetic" for d in datasets)
    return Plan(model, datasets, preset, gpu_count, overrides, notes, steps, judged)


def yaml_value(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def shell_path(path: Path) -> str:
    """A path for a command run in the config's folder: relative when short, else absolute."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("../..") else str(path)


def commands(out: Path) -> list[str]:
    """The commands that check and run the config, from the config file's folder."""
    snakefile = REPO / "Snakefile"
    snakefile_text = str(snakefile) if snakefile.is_file() else "<prefalign checkout>/Snakefile"
    venv = REPO / ".venv" / "bin" / "activate"
    name = out.name
    run_dir = f"runs/{out.stem}"
    return [f"cd {out.parent.resolve()}" + (f" && source {venv}" if venv.is_file() else ""),
            f"prefalign config check {name}",
            f"snakemake -s {snakefile_text} --configfile {name} --directory {run_dir} --cores all",
            f"# the report: {run_dir}/results/report/report.html"]


def render(plan: Plan, command: str, out: Path = Path("config.yaml")) -> str:
    """The config text: every choice commented, the preset's values listed for reference."""
    lines = [
        f"# prefalign config, written by `{command}` (prefalign {__version__}).",
        "#",
        "# Check and run it (results/, logs/ and benchmarks/ go to a run folder of its own, so runs of",
        "# other configs sit side by side; relative paths here are taken from this file's folder):",
        *[f"#   {c}" for c in commands(out)],
        f"# Every resolved value: prefalign config show {out.name}. Every key, its meaning and its default:",
        "# schemas/config.schema.yaml in the checkout.",
        "#",
        *[f"# {note}" for note in plan.notes],
        "",
        f"# Preset {plan.preset}: {presets.DESCRIPTIONS[plan.preset]}.",
        "# It fills every key of gpu, sft, dpo, reward and eval that this file does not set; set one to override it:",
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
    for d in plan.datasets:
        lines.append(f"  {d.name}: {yaml_value(d.entry)}")
    if plan.sample:
        lines += ["# Caps: read at most N raw records of a dataset (datasets.<name>.max_records).",
                  f"sample: {yaml_value(plan.sample)}"]
    for section, keys in plan.overrides.items():
        lines += ["", f"{section}:  # beyond the preset (see the notes at the top)"]
        for key, value in keys.items():
            comment = ""
            if section == "data" and key == "max_tokens":
                comment = ("  # dpo.max_length: longer pairs are ledgered (too_many_tokens), not cut in training; "
                           "counted with the model's tokenizer")
            if key == "max_steps" and section in plan.steps:
                s = plan.steps[section]
                comment = (f"  # {s['epochs']} epoch(s) of ~{s['train']} train pairs at {s['batch']} pairs per step "
                           f"(the preset's {presets.value_of(plan.preset, section, 'max_steps')})")
            lines.append(f"  {key}: {yaml_value(value)}{comment}")
    if not plan.judged:
        lines += ["", "eval:",
                  "  # auto: no dataset here is synthetic, so the task verifier cannot judge the answers; a reward",
                  "  # model is trained on the train split (rule train_reward_model, section reward) and judges them,",
                  "  # with its held-out accuracy in the report. DPO's on-policy pairs are picked by another reward",
                  "  # model (onpolicy.judge auto: rule train_pair_judge), trained on the other part of the train",
                  "  # prompts (reward.eval_share), so DPO is never graded by the judge it was trained toward.",
                  "  # To use your own: judge: reward_model and",
                  "  # reward_model: <folder, or a hub id with reward_model_revision: <commit>>.",
                  "  judge: auto"]
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
                        help="synthetic, synth_hh, synth_shp, a local file (JSON Lines, JSON, Parquet; optionally .gz) "
                             "or a hub dataset owner/name@<commit>; :N caps it at N raw records (repeatable)")
    parser.add_argument("--preset", choices=presets.NAMES,
                        help="preset (default: this machine's: cpu-demo without a CUDA GPU, else by GPU memory)")
    parser.add_argument("--revision", help="hub model: the commit to pin (40 hex digits)")
    parser.add_argument("--format", choices=FORMATS, help="format of the datasets (default: read from a local "
                                                          "file's first row, or known from a hub id)")
    parser.add_argument("--out", type=Path, default=Path("config.yaml"), help="output file (default: config.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def main(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.force:
        raise ConfigError(f"out: {args.out} exists; pass --force to overwrite it or --out another file")
    machine = Machine.detect() if args.preset is None else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chosen = plan(args, machine, args.out.parent)
    command = "prefalign init " + " ".join(
        [f"--model {args.model}", *[f"--dataset {d}" for d in args.dataset]]
        + ([f"--format {args.format}"] if args.format else []) + ([f"--preset {args.preset}"] if args.preset else [])
        + [f"--out {args.out}"])
    text = render(chosen, command, args.out)
    # Checked as the workflow will check it, before anything is written: next to the output, so
    # its relative paths resolve as they will.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".yaml", prefix=f".{args.out.name}.",
                                     dir=args.out.parent, delete=False) as draft:
        draft.write(text)
    try:
        resolved = resolve([Path(draft.name)])
        # Enough data for the steps this file sets? 0 pairs is an error here (a wrong --format, most
        # often); too few for a step's batch or many epochs are warnings (`config check` refuses the former).
        counts = {d.name: d.count for d in chosen.datasets}
        refusals, warnings = sufficiency.assess(resolved.config, counts)
        empty = [r for r in refusals if ": 0 pairs from " in r]
        if empty:
            raise ConfigError("dataset: no pairs to train on, nothing written:\n  " + "\n  ".join(empty))
        warnings = [f"{r} (`prefalign config check` refuses this)" for r in refusals] + warnings
        os.replace(draft.name, args.out)
    finally:
        if os.path.exists(draft.name):
            os.unlink(draft.name)
    print(f"wrote {args.out}: preset {chosen.preset}, model {chosen.model.get('name_or_path', 'tiny')}, "
          f"datasets {', '.join(d.name for d in chosen.datasets)}"
          + (f", sample {', '.join(chosen.sample)}" if chosen.sample else ""))
    for note in chosen.notes:
        print(f"  {note}")
    for step, s in chosen.steps.items():
        print(f"  {step}: {s['epochs']} epoch(s) of ~{s['train']} train pairs at {s['batch']} per step = "
              f"{s['max_steps']} steps")
    for warning in warnings:
        print(f"  Warning: {warning}")
    print("Next:")
    for line in commands(args.out):
        print(f"  {line}")
