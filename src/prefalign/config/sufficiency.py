"""Is there enough data for the steps a config sets? Counted before any run, as the data stage counts.

    count_local(config)              {dataset: pairs the normalize step keeps} of every local file (the
                                     file read with the dataset's own settings and the default filters,
                                     into a scratch folder; capped by datasets.<name>.cap)
    assess(config, counts)           (refusals, warnings): sentences naming the dataset and the step

Refused (`prefalign config check` exits 1; `prefalign init` writes nothing for 0 pairs):
  - a dataset that yields 0 pairs: a wrong format or field names, or every row filtered out (the
    reasons the normalize step gave are quoted);
  - train pairs (about (1 - data.test_fraction) of the pairs) fewer than one optimizer step of SFT
    or DPO (batch_size x gradient_accumulation_steps x GPUs): the step could not fill a single
    batch (on-policy DPO trains on at most one pair per train prompt, so fewer still).
Warned:
  - the same for a trained reward-model judge (which may learn from reward.eval_share of the
    pairs): a judge trained on so few is weak, which the report's verdict weighs;
  - a step that repeats its train pairs more than MAX_EPOCHS times (memorising, not learning; the
    embedded default's SFT makes about 4.7 passes, its on-policy DPO about 4);
  - a tiny model (trained from scratch) with fewer SFT steps than TINY_SFT_STEPS: the demo's model
    needs about 1,000 steps before it answers its tasks (FACTS.md: SFT 1,000-1,500 steps), and the
    run's answers are then likely blank or repeated.
Synthetic datasets are not counted (the demo's steps are calibrated on them), nor are hub datasets
(not downloaded before the run): their counts are None and say so.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

from prefalign.data.filters import FilterSettings
from prefalign.data.normalize import NormalizeSettings, normalize
from prefalign.yamlio import where

MAX_EPOCHS = 20
TINY_SFT_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class Count:
    kept: int  # pairs the normalize step keeps (after the dataset's cap)
    rows: int  # raw units read
    reasons: dict  # dropped units by reason


def count_local(config: dict) -> dict[str, Count | None]:
    """{dataset: Count} for each local file of a resolved config; None for synthetic and hub datasets."""
    from prefalign.config.steps import build

    counts: dict[str, Count | None] = {}
    for name, entry in config["datasets"].items():
        if entry["source"] != "local":
            counts[name] = None
            continue
        settings = dataclasses.replace(build(NormalizeSettings, config, [], name, job={"name": name}),
                                       on_bad_record="quarantine")
        with tempfile.TemporaryDirectory(prefix="prefalign-count-") as scratch:
            stats = normalize(Path(entry["path"]), settings, FilterSettings(), Path(scratch) / "n.jsonl",
                              Path(scratch) / "r.jsonl")
        kept = stats["kept"] if entry.get("cap") is None else min(stats["kept"], entry["cap"])
        counts[name] = Count(kept, stats["in"], stats["dropped_by_reason"])
    return counts


def step_batches(config: dict) -> dict[str, tuple[int, float]]:
    """{step: (pairs per optimizer step, share of the train pairs it learns from)} of the training steps that run."""
    from prefalign.evaluation.judges import choose_judges

    gpus = max(config["gpu"]["count"], 1)
    judges = choose_judges(config)

    def batch(section):
        return config[section]["batch_size"] * config[section]["gradient_accumulation_steps"] * gpus

    steps = {"sft": (batch("sft"), 1.0), "dpo": (batch("dpo"), 1.0)}
    share = config["reward"]["eval_share"]
    for label, choice in (("reward model (evaluation judge)", judges.evaluation), ("reward model (pair judge)",
                                                                                    judges.pairs)):
        if choice is not None and choice.kind == "trained":
            part = {"evaluation": share, "pairs": 1 - share}.get(choice.part, 1.0)
            steps[label] = (batch("reward"), part)
    return steps


def assess(config: dict, counts: dict[str, Count | None], sources=()) -> tuple[list[str], list[str]]:
    """(refusals, warnings) for a resolved config and its local files' pair counts; `sources`: the config
    files, for the file:line of a dataset refused."""
    refusals, warnings = [], []
    for name, count in counts.items():
        if count is not None and count.kept == 0:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(count.reasons.items(), key=lambda x: -x[1]))
            refusals.append(f"{where([Path(s) for s in sources], ['datasets', name])}datasets.{name}: 0 pairs from "
                            f"{count.rows} rows of {config['datasets'][name]['path']} "
                            f"as {config['datasets'][name]['format']} (dropped: {reasons or 'none'}); check the "
                            "format (and a pairs file's field names) or the filters")
    if any(c is None for c in counts.values()) or refusals:
        return refusals, warnings  # an uncounted dataset: the train split's size is unknown
    pairs = sum(c.kept for c in counts.values())
    train = math.floor(pairs * (1 - config["data"]["test_fraction"]))
    for step, (batch, share) in step_batches(config).items():
        available = math.floor(train * share)
        section = "reward" if step.startswith("reward") else step
        if available < batch:
            # SFT and DPO are the run; a reward-model judge on too few pairs is weak, which the report's verdict
            # weighs (its held-out accuracy), so it is a warning.
            (refusals if section in ("sft", "dpo") else warnings).append(
                f"{section}: about {available} train pairs for the {step} ({pairs} pairs, data.test_fraction "
                f"{config['data']['test_fraction']:g}" + (f", reward.eval_share part {share:g}" if share < 1 else "")
                + f") are fewer than one optimizer step of {batch} pairs (batch_size x gradient_accumulation_steps "
                "x GPUs): add data or lower the batch")
            continue
        epochs = config[section]["max_steps"] * batch / available
        if epochs > MAX_EPOCHS:
            warnings.append(f"{section}.max_steps {config[section]['max_steps']} x {batch} pairs per step repeats "
                            f"the about {available} train pairs of the {step} {epochs:.0f} times (more than "
                            f"{MAX_EPOCHS}): expect it to memorise them; lower max_steps or add data")
    if config["model"]["source"] == "tiny" and config["sft"]["max_steps"] < TINY_SFT_STEPS:
        warnings.append(f"sft.max_steps {config['sft']['max_steps']}: the tiny model is trained from scratch, and the "
                        f"demo's needs about {TINY_SFT_STEPS} SFT steps before it answers; with fewer (and "
                        f"{pairs} pairs) expect blank or repeated answers (the report flags them)")
    return refusals, warnings
