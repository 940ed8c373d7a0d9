"""Step `report`: report.md and a self-contained report.html from a run's outputs.

Sections: summary (first the answer to "did DPO help?": a verdict per comparison from its
win rate's interval, weighed by the judge's held-out accuracy, with the length-controlled
verdict and the rerun noise floor (the expected file's `spread`, --expected); which judge
picked DPO's pairs and which graded them; how far to trust the judge; warnings about empty,
repeated or truncated answers and below-chance ranking; then a table whose columns compare like with
like, the reference-relative ones labelled; every metric that could not be computed, with
its reason), evaluation metrics of every checkpoint side by side with their intervals, the
judge win rates, plots of the intervals and of the reward-margin distributions, training
curves (loss, rewards/accuracies, rewards/margins, grad norm), the data ledger, sample
generations (greedy and sampled, side by side), each step's resolved settings, the software
that ran (the hardware is in the manifest), and the manifest's digest when a manifest is given. Plots are inlined
in the HTML as PNG data URIs, so the file needs nothing else. Reads only the files it is
given; writes only the two reports.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.evaluation.check import load_spread
from prefalign.hashing import sha256_file
from prefalign.jsonl import read_jsonl, write_text
from prefalign.report import document, outcome
from prefalign.report import plots as report_plots
from prefalign.report import rounds as report_rounds
from prefalign.report.data import data_section
from prefalign.report.document import Bullets, Details, Figure, Heading, Section, Table, Text
from prefalign.report.flags import flag_lines
from prefalign.report.sections import ab_section, health_section
from prefalign.settings import Settings, expect

# (key, label, format); intervals are shown where evaluate wrote one for the key.
METRICS = [
    ("implicit_reward_accuracy", "implicit-reward accuracy (vs reference)", ".3f"),
    ("reward_margin_mean", "reward margin, mean", ".3f"),
    ("reward_margin_std", "reward margin, standard deviation", ".3f"),
    ("reward_margin_p05", "reward margin, 5th percentile", ".3f"),
    ("reward_margin_median", "reward margin, median", ".3f"),
    ("reward_margin_p95", "reward margin, 95th percentile", ".3f"),
    ("logp_accuracy", "log-prob accuracy", ".3f"),
    ("logp_accuracy_normalized", "log-prob accuracy, per token", ".3f"),
    ("sigmoid_loss", "sigmoid loss, -log σ(margin)", ".4f"),
    ("chosen_nll_per_token", "NLL per token of the chosen replies", ".4f"),
    ("kl_mean", "KL(policy ‖ reference), sequence level, nats", ".3f"),
    ("kl_se", "KL standard error (over prompts)", ".3f"),
    ("judge_accuracy", "judge accuracy (greedy, task verifier)", ".3f"),
    ("judge_score_mean", "judge score, mean (greedy)", ".3f"),
    ("generation_length_mean", "answer length, mean tokens (greedy)", ".2f"),
    ("sampled_judge_accuracy", "judge accuracy (sampled, task verifier)", ".3f"),
    ("sampled_judge_score_mean", "judge score, mean (sampled)", ".3f"),
    ("sampled_length_mean", "answer length, mean tokens (sampled)", ".2f"),
    ("pairs", "test pairs scored", "d"),
    ("distinct_prompts", "distinct held-out prompts", "d"),
    ("task_prompts", "of them task prompts (the verifier can check)", "d"),
    ("judged_prompts", "prompts answered and judged", "d"),
    ("kl_prompts", "prompts of the KL estimate", "d"),
    ("kl_samples", "policy samples of the KL estimate", "d"),
    ("answered_prompts", "prompts answered (greedy)", "d"),
    ("empty_answers", "of them with an empty answer", "d"),
    ("top_answer_prompts", "of them given the most common answer", "d"),
    ("truncated_answers", "of them cut at max_new_tokens", "d"),
]


@dataclass
class ReportSettings(Settings):
    SECTION = "report"
    title: str = field(default="prefalign run report", metadata={"help": "title of both reports"})
    sample_generations: int = field(default=12, metadata={"help": "side-by-side answers shown"})

    def __post_init__(self):
        expect(self.sample_generations >= 0, "sample_generations", "an integer >= 0", self.sample_generations)


@dataclass
class RunOutputs:
    """Everything the report reads, loaded once."""

    evaluations: dict[str, dict]
    generations: dict[str, list[dict]]
    pairs: dict[str, list[dict]]
    comparisons: list[dict]
    datasets: list[dict]
    split: dict
    training: dict[str, dict]  # step -> metrics.json
    histories: dict[str, list[dict]]  # step -> TRL log entries
    base: dict
    environment: dict
    manifest: dict | None  # {"path", "sha256", "size"} of the manifest file, when given
    ab: dict | None  # the human A/B win rate, once ratings are imported
    judge_eval: dict | None = None  # a reward-model judge's held-out accuracy (evaluate-judge)
    spread: dict | None = None  # the win rates' spread over seeds (the expected file's `spread`), when given
    pair_stats: dict | None = None  # the last on-policy round's stats (its judge: the pair judge), when DPO used them

    @classmethod
    def load(cls, args) -> "RunOutputs":
        def read(path):
            return json.loads(Path(path).read_text(encoding="utf-8"))

        evaluations = {}
        for path in args.eval_metrics:
            data = read(path)
            evaluations[data["model"]] = data
        names = list(evaluations)
        manifest = None
        if args.manifest:
            manifest = {"path": str(args.manifest), "sha256": sha256_file(args.manifest),
                        "size": Path(args.manifest).stat().st_size}
        return cls(
            evaluations=evaluations,
            generations={name: read_jsonl(Path(p)) for name, p in zip(names, args.generations)},
            pairs={name: read_jsonl(Path(p)) for name, p in zip(names, args.pairs or [])},
            comparisons=[read(p) for p in args.comparisons or []],
            datasets=[read(p) for p in args.dataset_stats],
            split=read(args.split_stats),
            training={"sft": read(args.sft_metrics), "dpo": read(args.dpo_metrics)},
            histories={"sft": read_jsonl(args.sft_log), "dpo": read_jsonl(args.dpo_log)},
            base=read(args.base_info),
            environment=read(args.environment),
            manifest=manifest,
            ab=read(args.ab_result) if args.ab_result else None,
            judge_eval=read(args.judge_eval) if getattr(args, "judge_eval", None) else None,
            spread=load_spread(args.expected) if getattr(args, "expected", None) else None,
            pair_stats=read(args.onpolicy_stats[-1]) if getattr(args, "onpolicy_stats", None) else None,
        )


# ---------------------------------------------------------------- cells

def fmt(value, spec: str) -> str:
    if value is None:
        return outcome.NOT_COMPUTED
    return format(value, spec)


def with_interval(result: dict, key: str, spec: str = ".3f") -> str:
    """`value [low, high]` where evaluate wrote an interval for `key`, else the value."""
    value = result["metrics"].get(key)
    interval = result.get("intervals", {}).get(key)
    if value is None or interval is None:
        return fmt(value, spec)
    return f"{format(value, spec)} [{format(interval['low'], spec)}, {format(interval['high'], spec)}]"


def kl_cell(result: dict) -> str:
    m = result["metrics"]
    if m.get("kl_mean") is None:
        return outcome.NOT_COMPUTED
    return f"{m['kl_mean']:.3f} ± {m['kl_se']:.3f}" if m.get("kl_se") is not None else f"{m['kl_mean']:.3f}"


def shown(answer: str, limit: int = 40) -> str:
    """An answer as a table cell: escapes visible (a base model writes control bytes), cut short."""
    text = json.dumps(answer, ensure_ascii=False)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mark(correct) -> str:
    return "" if correct is None else " ✓" if correct else " ✗"


# ---------------------------------------------------------------- sections (shared by both formats)

def summary_lines(run: RunOutputs) -> list[str]:
    ev = {name: data["metrics"] for name, data in run.evaluations.items()}
    lines = []
    if "dpo" in ev:
        lines.append(
            f"DPO implicit-reward accuracy on {ev['dpo']['pairs']} held-out pairs: "
            f"{with_interval(run.evaluations['dpo'], 'implicit_reward_accuracy')} (95% interval), "
            f"reward margin {with_interval(run.evaluations['dpo'], 'reward_margin_mean')}."
        )
        if ev["dpo"].get("kl_mean") is not None:
            lines.append(f"DPO moved {kl_cell(run.evaluations['dpo'])} nats (KL from {run.evaluations['dpo']['reference']},"
                         f" sequence level, ± SE over {ev['dpo'].get('kl_prompts', ev['dpo']['kl_samples'])} held-out "
                         f"prompts, {ev['dpo']['kl_samples']} policy samples).")
    if "dpo" in ev and "sft" in ev and ev["dpo"].get("judge_accuracy") is not None:
        lines.append(
            f"Task-verifier accuracy of the greedy answers (task prompts only): SFT {with_interval(run.evaluations['sft'], 'judge_accuracy')}"
            f" -> DPO {with_interval(run.evaluations['dpo'], 'judge_accuracy')}."
        )
    first = run.training["dpo"]["train"].get("first_loss")
    if first is not None and run.training["dpo"]["settings"].get("loss_type") == ["sigmoid"]:
        lines.append(f"DPO loss at step 1: {first:.4f} (ln 2 = 0.6931 is expected there: policy = reference).")
    elif first is not None:
        losses = " + ".join(run.training["dpo"]["settings"]["loss_type"])
        lines.append(f"DPO loss ({losses}) at step 1: {first:.4f}; at the end: {run.training['dpo']['train']['loss']:.4f}"
                     " (its parts on the held-out pairs: Training, DPO).")
    return lines


def summary_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    """One row per checkpoint. The first columns measure each model on its own (rows compare
    directly); the last three are relative to each model's own reference (labelled so)."""
    header = ["model", "log-prob accuracy [95% CI]", "judge score, greedy [95% CI]",
              "task-verifier accuracy [95% CI]", "answer tokens [95% CI]", "its reference",
              "implicit-reward acc. vs its reference [95% CI]", "KL from its reference ± SE (nats)"]
    rows = []
    for name, result in run.evaluations.items():
        rows.append([name, with_interval(result, "logp_accuracy"), with_interval(result, "judge_score_mean"),
                     with_interval(result, "judge_accuracy"), with_interval(result, "generation_length_mean", ".2f"),
                     result.get("reference", ""), with_interval(result, "implicit_reward_accuracy"), kl_cell(result)])
    return header, rows


def metrics_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    names = list(run.evaluations)
    header = ["metric"] + [f"{n} (ref: {run.evaluations[n].get('reference', '')})".replace(" (ref: )", "")
                           for n in names]
    rows = [[label] + [with_interval(run.evaluations[n], key, spec) if spec != "d"
                       else fmt(run.evaluations[n]["metrics"].get(key), spec) for n in names]
            for key, label, spec in METRICS]
    return header, rows


def interval_methods(run: RunOutputs) -> list[str]:
    methods = sorted({i["method"] for r in run.evaluations.values() for i in r.get("intervals", {}).values()})
    judges = sorted({json.dumps(r.get("judge", {}), sort_keys=True) for r in run.evaluations.values()})
    return [f"Intervals are 95%: {'; '.join(methods)}; over held-out pairs or prompts, seeded.",
            f"Judge: {', '.join(judges)}. Sampled answers: temperature 1, no top-k/top-p (the KL estimate needs "
            f"the policy's own distribution), one per prompt, seeded."]


def generations_table(run: RunOutputs, limit: int) -> tuple[list[str], list[list[str]]]:
    """Prompt, expected answer, and each model's greedy and sampled answers (✓/✗: task verifier)."""
    names = list(run.generations)
    if not names or limit == 0:
        return [], []
    by_id = {n: {g["id"]: g for g in run.generations[n]} for n in names}
    first = run.generations[names[0]]
    header = ["prompt", "expected"] + [f"{n} {d}" for n in names for d in ("greedy", "sampled")]
    rows = []
    for g in first[:limit]:
        cells = [shown(g["prompt"], 80), g.get("expected") or ""]
        for n in names:
            other = by_id[n].get(g["id"])
            if other is None:
                cells += ["", ""]
                continue
            cells.append(shown(other["answer"]) + mark(other.get("correct")))
            sampled = other.get("sampled")
            cells.append("" if sampled is None else shown(sampled["answer"]) + mark(sampled.get("correct")))
        rows.append(cells)
    return header, rows


def settings_tables(run: RunOutputs) -> dict[str, dict]:
    tables = {"model": run.base["settings"]}
    for step in ("sft", "dpo"):
        tables[step] = {**run.training[step]["settings"],
                        **{f"resolved.{k}": v for k, v in run.training[step]["resolved"].items()}}
    if run.datasets:
        tables["data"] = {**run.datasets[0]["settings"], **{k: v for k, v in run.split["settings"].items()}}
        tables["data"].pop("name", None)
        tables["data"].pop("format", None)
    if run.evaluations:
        first = next(iter(run.evaluations.values()))
        tables["eval"] = {**first["settings"], "judge": first.get("judge", first["settings"].get("judge"))}
        tables["eval"].pop("name", None)
        tables["eval"].pop("reference_name", None)
    if run.comparisons:
        tables["compare"] = run.comparisons[0]["settings"]
    return tables


def environment_lines(run: RunOutputs) -> list[tuple[str, str]]:
    """The software and the processor-dependent numeric code paths (`cpu_numerics`, where the step
    recorded them) that made the run, never the machine: CPU model, cores, GPU and platform live in
    the manifest (each step's environment record), so the report is the same on any x86-64 CPU."""
    env = run.environment
    pairs = [(k, v) for k, v in sorted(env.get("packages", {}).items())]
    numerics = env.get("cpu_numerics")
    if isinstance(numerics, dict):
        pairs += [(f"cpu_numerics.{k}", v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                  for k, v in sorted(numerics.items())]
    elif numerics is not None:
        pairs.append(("cpu_numerics", str(numerics)))
    pairs.append(("hardware", "not shown, so this report is the same on any machine: results/manifest.json "
                              "records it (each step's environment, run.gpus)"))
    return pairs


def manifest_lines(run: RunOutputs) -> list[tuple[str, str]]:
    if run.manifest is None:
        return [("manifest", "not given to this report")]
    return [("manifest", run.manifest["path"]), ("sha256", run.manifest["sha256"]),
            ("size", f"{run.manifest['size']} bytes")]


def train_rows(run: RunOutputs, step: str) -> list[list[str]]:
    return [[k, fmt(v, ".4g") if isinstance(v, float) else str(v)] for k, v in run.training[step]["train"].items()]


# ---------------------------------------------------------------- the sections

def first_lines(run: RunOutputs) -> list[str]:
    """The report's first lines: did DPO help (weighing the judge, the length and the rerun noise), which judge
    did what, how far to trust the judge, and what a broken model or thin run shows (report.flags)."""
    judges = outcome.judges_line(run.evaluations, (run.pair_stats or {}).get("judge"))
    return (outcome.verdict_lines(run.comparisons, run.spread) + ([judges] if judges else [])
            + outcome.trust_lines(run.comparisons, run.judge_eval) + flag_lines(run.evaluations, run.comparisons))


def summary_section(run: RunOutputs) -> Section:
    gaps = outcome.gap_lines(run.evaluations, run.comparisons, run.judge_eval)
    blocks = [Bullets(first_lines(run)),
              Bullets(outcome.judge_lines(run.evaluations, run.comparisons, run.judge_eval, run.pair_stats)),
              Table(*summary_table(run), html_id="summary-table"),
              Text("The first columns measure each model on its own, so its rows compare directly; the last three are "
                   "relative to each model's own reference (base for SFT, SFT for DPO; the base is its own) and "
                   "compare only a model with its reference.", note=True),
              Bullets(summary_lines(run))]
    if gaps:
        blocks += [Heading("Gaps and caveats: what could not be computed, or is 0 by construction, and why"),
                   Bullets(gaps)]
    return Section("summary", "Summary", blocks)


def evaluation_section(run: RunOutputs, images: dict[str, str | None]) -> Section:
    blocks = [Table(*metrics_table(run), html_id="metrics-table")]
    blocks += [Text(line, note=True) for line in interval_methods(run)]
    blocks += [Figure(images.get("intervals"), "held-out metrics with 95% intervals"),
               Heading("Judge win rates"), Table(*outcome.win_rate_rows(run.comparisons), html_id="win-rates"),
               Text("Win rate: (wins + ties/2) / prompts. Length-controlled: the judge's preference regressed on the "
                    "answer-length difference (logistic, on tanh of the difference over its standard deviation), "
                    "predicted at equal length, as AlpacaEval 2's LC win rate; both with 95% bootstrap intervals over "
                    "prompts.", note=True),
               Heading("Reward-margin distributions"), Figure(images.get("margins"), "reward margin histograms")]
    return Section("evaluation", "Evaluation on the held-out split", blocks)


def training_section(run: RunOutputs, images: dict[str, str | None]) -> Section:
    blocks = []
    for step in ("sft", "dpo"):
        blocks += [Heading(step.upper()), Figure(images.get(f"curves:{step}"), f"{step} training curves"),
                   Table(["metric", "value"], train_rows(run, step))]
    header, rows, notes = outcome.loss_part_rows(run.training["dpo"]["settings"], run.evaluations)
    if rows:
        blocks += [Heading("DPO loss and its parts (held-out pairs)"), Table(header, rows, html_id="loss-parts"),
                   Text("The logged training loss is this weighted sum on the training batches; a rising total with a "
                        "falling sigmoid term means the NLL term rose.", note=True)]
    blocks += [Text(note, note=True) for note in notes]
    return Section("training", "Training", blocks)


def generations_section(run: RunOutputs, limit: int) -> Section:
    pair = (run.comparisons[0]["model"], run.comparisons[0]["baseline"]) if run.comparisons else None
    if pair is None and {"sft", "dpo"} <= set(run.generations):
        pair = ("dpo", "sft")
    blocks = []
    header, rows = outcome.sample_answer_rows(run.generations, pair, limit)
    if rows:
        blocks += [Text(f"{pair[1].upper()} and {pair[0].upper()} greedy answers to the same held-out prompts, with the "
                        "judge's score of each (✓/✗: the task verifier, where it can check).", note=True),
                   Table(header, rows, html_id="sample-answers")]
    else:
        blocks.append(Text("No answers to show side by side: " + (
            "no comparison is configured (eval.comparisons)." if pair is None else
            f"{pair[0]} and {pair[1]} answered no held-out prompt in common."), note=True))
    blocks.append(Details("every model, greedy and sampled answers",
                          Table(*generations_table(run, limit), html_id="generations")))
    return Section("generations", "Sample answers", blocks)


def settings_section(run: RunOutputs) -> Section:
    return Section("settings", "Resolved settings", [
        Details(step, Table(["key", "value"], [[k, json.dumps(v)] for k, v in values.items()]))
        for step, values in settings_tables(run).items()])


def environment_section(run: RunOutputs) -> Section:
    return Section("environment", "Software and hardware",
                   [Table(["item", "value"], [[k, str(v)] for k, v in environment_lines(run)])])


def manifest_section(run: RunOutputs) -> Section:
    return Section("manifest", "Manifest", [Table(["item", "value"], manifest_lines(run), html_id="manifest")])


def report_sections(run: RunOutputs, settings: ReportSettings, images: dict[str, str | None]) -> list[Section]:
    """Every section in reading order: what a reviewer needs first (results, then warnings) comes first."""
    return [
        summary_section(run),
        health_section(run.training, run.evaluations),
        ab_section(run.ab),
        evaluation_section(run, images),
        training_section(run, images),
        data_section(run.datasets, run.split),
        generations_section(run, settings.sample_generations),
        settings_section(run),
        environment_section(run),
        manifest_section(run),
    ]


def render_images(run: RunOutputs) -> dict[str, str | None]:
    images: dict[str, str | None] = {f"curves:{k}": v for k, v in report_plots.training_curves(run.histories).items()}
    images["intervals"] = report_plots.metric_intervals(run.evaluations, run.comparisons)
    betas = {name: r["settings"].get("beta") for name, r in run.evaluations.items()}
    images["margins"] = report_plots.margin_distributions(run.pairs, betas)
    return images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval-metrics", type=Path, nargs="+", required=True, help="evaluate outputs (JSON)")
    parser.add_argument("--generations", type=Path, nargs="+", required=True,
                        help="evaluate generations (JSONL), in the order of --eval-metrics")
    parser.add_argument("--pairs", type=Path, nargs="*", default=[],
                        help="evaluate per-pair scores (JSONL), in the order of --eval-metrics (optional)")
    parser.add_argument("--comparisons", type=Path, nargs="*", default=[], help="compare outputs (JSON, optional)")
    parser.add_argument("--dataset-stats", type=Path, nargs="+", required=True, help="normalize stats (JSON)")
    parser.add_argument("--split-stats", type=Path, required=True, help="split stats (JSON)")
    parser.add_argument("--sft-metrics", type=Path, required=True, help="sft metrics (JSON)")
    parser.add_argument("--sft-log", type=Path, required=True, help="sft log history (JSONL)")
    parser.add_argument("--dpo-metrics", type=Path, required=True, help="dpo metrics (JSON)")
    parser.add_argument("--dpo-log", type=Path, required=True, help="dpo log history (JSONL)")
    parser.add_argument("--base-info", type=Path, required=True, help="prefalign_base.json of the base model")
    parser.add_argument("--environment", type=Path, required=True, help="environment.json of the DPO step")
    parser.add_argument("--manifest", type=Path, help="the run's manifest (JSON, optional): its sha256 is shown")
    parser.add_argument("--ab-result", type=Path, help="human A/B win rate (JSON from `prefalign ab import`, optional)")
    parser.add_argument("--judge-eval", type=Path, help="the reward-model judge's held-out accuracy (JSON from "
                                                        "`prefalign evaluate-judge`, optional)")
    parser.add_argument("--expected", type=Path, help="the run's expected file (check.expected, optional): its "
                                                      "`spread` is the win rates' noise floor over seeds")
    parser.add_argument("--md", type=Path, required=True, help="output: report.md")
    parser.add_argument("--html", type=Path, required=True, help="output: self-contained report.html")
    report_rounds.add_arguments(parser)
    ReportSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = ReportSettings.from_args(args)
    expect(len(args.generations) == len(args.eval_metrics), "generations", "one file per --eval-metrics file",
          [str(p) for p in args.generations])
    expect(not args.pairs or len(args.pairs) == len(args.eval_metrics), "pairs", "one file per --eval-metrics file",
          [str(p) for p in args.pairs])
    run = RunOutputs.load(args)
    sections = report_sections(run, settings, render_images(run))
    rounds = report_rounds.rounds_section(args, run)  # on-policy DPO rounds, right after the summary
    if rounds is not None:
        sections.insert(1, rounds)
    write_text(args.md, document.markdown(settings.title, sections))
    write_text(args.html, document.html(settings.title, sections))
    print(f"wrote {args.md} and {args.html}")
