"""Step `report`: report.md and a self-contained report.html from a run's outputs.

Sections: summary (a table of the headline metrics with 95% intervals, and what DPO
changed), evaluation metrics of every checkpoint side by side with their intervals, the
judge win rates, plots of the intervals and of the reward-margin distributions, training
curves (loss, rewards/accuracies, rewards/margins, grad norm), the data ledger, sample
generations (greedy and sampled, side by side), each step's resolved settings, the software
and hardware that ran, and the manifest's digest when a manifest is given. Plots are inlined
in the HTML as PNG data URIs, so the file needs nothing else. Reads only the files it is
given; writes only the two reports.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign.report import data as report_data
from prefalign.report import rounds as report_rounds
from prefalign.report import sections as report_guidance
from prefalign.report import plots as report_plots
from prefalign.records import load_records
from prefalign.settings import Settings, check

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
    ("kl_mean", "KL(policy ‖ reference), sequence level, nats", ".3f"),
    ("kl_se", "KL standard error", ".3f"),
    ("judge_accuracy", "judge accuracy (greedy, task verifier)", ".3f"),
    ("judge_score_mean", "judge score, mean (greedy)", ".3f"),
    ("generation_length_mean", "answer length, mean tokens (greedy)", ".2f"),
    ("sampled_judge_accuracy", "judge accuracy (sampled, task verifier)", ".3f"),
    ("sampled_judge_score_mean", "judge score, mean (sampled)", ".3f"),
    ("sampled_length_mean", "answer length, mean tokens (sampled)", ".2f"),
    ("pairs", "test pairs scored", "d"),
    ("judged_prompts", "prompts answered and judged", "d"),
    ("kl_samples", "policy samples of the KL estimate", "d"),
]


@dataclass
class ReportSettings(Settings):
    title: str = field(default="prefalign run report", metadata={"help": "title of both reports"})
    sample_generations: int = field(default=12, metadata={"help": "side-by-side answers shown"})

    def __post_init__(self):
        check(self.sample_generations >= 0, "sample_generations", "an integer >= 0", self.sample_generations)


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
            blob = Path(args.manifest).read_bytes()
            manifest = {"path": str(args.manifest), "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
        return cls(
            evaluations=evaluations,
            generations={name: load_records(Path(p)) for name, p in zip(names, args.generations)},
            pairs={name: load_records(Path(p)) for name, p in zip(names, args.pairs or [])},
            comparisons=[read(p) for p in args.comparisons or []],
            datasets=[read(p) for p in args.dataset_stats],
            split=read(args.split_stats),
            training={"sft": read(args.sft_metrics), "dpo": read(args.dpo_metrics)},
            histories={"sft": load_records(args.sft_log), "dpo": load_records(args.dpo_log)},
            base=read(args.base_info),
            environment=read(args.environment),
            manifest=manifest,
        )


# ---------------------------------------------------------------- cells

def fmt(value, spec: str) -> str:
    if value is None:
        return "n/a"
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
        return "n/a"
    return f"{m['kl_mean']:.3f} ± {m['kl_se']:.3f}" if m.get("kl_se") is not None else f"{m['kl_mean']:.3f}"


def shown(answer: str, limit: int = 40) -> str:
    """An answer as a table cell: escapes visible (a base model writes control bytes), cut short."""
    text = json.dumps(answer, ensure_ascii=False)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict(correct) -> str:
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
                         f" sequence level, ± SE over {ev['dpo']['kl_samples']} policy samples).")
    if "dpo" in ev and "sft" in ev and ev["dpo"].get("judge_accuracy") is not None:
        lines.append(
            f"Judge accuracy (greedy answers scored by the task verifier): SFT {ev['sft']['judge_accuracy']:.3f}"
            f" -> DPO {ev['dpo']['judge_accuracy']:.3f}."
        )
    for c in run.comparisons:
        g = c["greedy"]
        lines.append(f"Judge win rate of {c['model'].upper()} vs {c['baseline'].upper()} ({c['judge']['kind']} judge, "
                     f"greedy, {g['prompts']} held-out prompts): {win_cell(g)}; {g['wins']} wins, {g['ties']} ties, "
                     f"{g['losses']} losses.")
    first = run.training["dpo"]["train"].get("first_loss")
    if first is not None and run.training["dpo"]["settings"].get("loss_type") == ["sigmoid"]:
        lines.append(f"DPO loss at step 1: {first:.4f} (ln 2 = 0.6931 is expected there: policy = reference).")
    elif first is not None:
        losses = " + ".join(run.training["dpo"]["settings"]["loss_type"])
        lines.append(f"DPO loss ({losses}) at step 1: {first:.4f}; at the end: {run.training['dpo']['train']['loss']:.4f}.")
    return lines


def win_cell(result: dict) -> str:
    interval = result.get("interval")
    if result.get("win_rate") is None:
        return "n/a"
    if not interval:
        return f"{result['win_rate']:.3f}"
    return f"{result['win_rate']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def summary_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    """One row per checkpoint: the headline metrics with their 95% intervals."""
    header = ["model (reference)", "implicit-reward acc. [95% CI]", "reward margin [95% CI]", "KL ± SE (nats)",
              "judge acc. [95% CI]", "answer tokens [95% CI]"]
    rows = []
    for name, result in run.evaluations.items():
        rows.append([f"{name} ({result.get('reference', '')})", with_interval(result, "implicit_reward_accuracy"),
                     with_interval(result, "reward_margin_mean"), kl_cell(result),
                     with_interval(result, "judge_accuracy"), with_interval(result, "generation_length_mean", ".2f")])
    return header, rows


def comparisons_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    if not run.comparisons:
        return [], []
    header = ["comparison", "judge", "decoding", "prompts", "wins", "ties", "losses", "win rate [95% CI]"]
    rows = []
    for c in run.comparisons:
        for decoding in ("greedy", "sampled"):
            r = c[decoding]
            rows.append([f"{c['model']} vs {c['baseline']}", c["judge"]["kind"], decoding, str(r["prompts"]),
                         str(r["wins"]), str(r["ties"]), str(r["losses"]), win_cell(r)])
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
        cells = [g["prompt"], g.get("expected") or ""]
        for n in names:
            other = by_id[n].get(g["id"])
            if other is None:
                cells += ["", ""]
                continue
            cells.append(shown(other["answer"]) + verdict(other.get("correct")))
            sampled = other.get("sampled")
            cells.append("" if sampled is None else shown(sampled["answer"]) + verdict(sampled.get("correct")))
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
    env = run.environment
    hw = env.get("hardware", {})
    pairs = [("platform", env.get("platform", "")), ("cpu", f"{hw.get('cpu', '')} ({hw.get('cpu_count')} cores)")]
    if hw.get("gpu"):
        gpu = hw["gpu"]
        pairs.append(("gpu", f"{gpu['name']} x{gpu['count']}, compute capability {gpu['compute_capability']}, "
                             f"driver {gpu.get('driver')}"))
    pairs += [(k, v) for k, v in sorted(env.get("packages", {}).items())]
    return pairs


def manifest_lines(run: RunOutputs) -> list[tuple[str, str]]:
    if run.manifest is None:
        return [("manifest", "not given to this report")]
    return [("manifest", run.manifest["path"]), ("sha256", run.manifest["sha256"]),
            ("size", f"{run.manifest['size']} bytes")]


def train_rows(run: RunOutputs, step: str) -> list[list[str]]:
    return [[k, fmt(v, ".4g") if isinstance(v, float) else str(v)] for k, v in run.training[step]["train"].items()]


# ---------------------------------------------------------------- markdown

def md_table(header, rows) -> str:
    if not header:
        return "_none_\n"
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines) + "\n"


def render_markdown(run: RunOutputs, settings: ReportSettings) -> str:
    out = [f"# {settings.title}\n", "## Summary\n", md_table(*summary_table(run))]
    out += [f"- {line}" for line in summary_lines(run)]
    out += ["", "## Evaluation on the held-out split\n", md_table(*metrics_table(run))]
    out += [f"{line}\n" for line in interval_methods(run)]
    out += ["### Judge win rates\n", md_table(*comparisons_table(run))]
    out += ["Plots of the intervals and of the reward-margin distributions are in report.html.\n"]
    out += ["## Training\n", "Curves are plotted in report.html.\n"]
    for step in ("sft", "dpo"):
        out += [f"### {step.upper()}\n", md_table(["metric", "value"], train_rows(run, step))]
    out += [report_data.markdown(run.datasets, run.split)]
    out += ["## Sample generations\n", "Greedy and sampled (seeded) answers to the same held-out prompts; "
            "✓/✗: the task verifier.\n", md_table(*generations_table(run, settings.sample_generations))]
    out += ["## Resolved settings\n"]
    for step, values in settings_tables(run).items():
        out += [f"### {step}\n", md_table(["key", "value"], [[k, json.dumps(v)] for k, v in values.items()])]
    out += ["## Software and hardware\n", md_table(["item", "value"], [[k, str(v)] for k, v in environment_lines(run)])]
    out += ["## Manifest\n", md_table(["item", "value"], [[k, v] for k, v in manifest_lines(run)])]
    return "\n".join(out)


# ---------------------------------------------------------------- html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#1d232b;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #d8dde3;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #d8dde3;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.5em 0}.summary li{margin:.2em 0}code{background:#f2f4f7;padding:0 .2em}
details{margin:.4em 0}nav a{margin-right:.8em}.note{color:#5a6270;font-size:.9em}
"""
SECTIONS = [("summary", "Summary"), ("evaluation", "Evaluation"), ("training", "Training"), ("data", "Data ledger"),
            ("generations", "Generations"), ("settings", "Settings"), ("environment", "Software and hardware"),
            ("manifest", "Manifest")]


def html_table(header, rows, table_id: str | None = None) -> str:
    if not header:
        return "<p><em>none</em></p>"
    attr = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for c in row:
            text = str(c)
            numeric = text.replace(".", "", 1).replace("-", "", 1).isdigit()
            cells.append(f"<td{' class=num' if numeric else ''}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def html_image(png_base64: str | None, alt: str) -> str:
    if png_base64 is None:
        return ""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png_base64}'>"


def render_html(run: RunOutputs, settings: ReportSettings, images: dict[str, str | None]) -> str:
    title = html.escape(settings.title)
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
             # The page loads nothing: a tight policy makes any accidental outside reference fail loudly.
             "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{title}</h1>",
             "<nav>" + "".join(f"<a href='#{key}'>{label}</a>" for key, label in SECTIONS) + "</nav>",
             "<h2 id=summary>Summary</h2>", html_table(*summary_table(run), table_id="summary-table"),
             "<ul class=summary>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in summary_lines(run)]
    parts += ["</ul>", "<h2 id=evaluation>Evaluation on the held-out split</h2>",
              html_table(*metrics_table(run), table_id="metrics-table")]
    parts += [f"<p class=note>{html.escape(line)}</p>" for line in interval_methods(run)]
    parts += [html_image(images.get("intervals"), "held-out metrics with 95% intervals"),
              "<h3>Judge win rates</h3>", html_table(*comparisons_table(run), table_id="win-rates"),
              "<h3>Reward-margin distributions</h3>", html_image(images.get("margins"), "reward margin histograms"),
              "<h2 id=training>Training</h2>"]
    for step in ("sft", "dpo"):
        parts += [f"<h3>{step.upper()}</h3>", html_image(images.get(f"curves:{step}"), f"{step} training curves"),
                  html_table(["metric", "value"], train_rows(run, step))]
    parts.append(report_data.html(run.datasets, run.split))
    parts += ["<h2 id=generations>Sample generations</h2>",
              "<p class=note>Greedy and sampled (seeded) answers to the same held-out prompts; ✓/✗: the task "
              "verifier.</p>", html_table(*generations_table(run, settings.sample_generations), table_id="generations"),
              "<h2 id=settings>Resolved settings</h2>"]
    for step, values in settings_tables(run).items():
        parts.append(f"<details open><summary>{html.escape(step)}</summary>"
                     + html_table(["key", "value"], [[k, json.dumps(v)] for k, v in values.items()]) + "</details>")
    parts += ["<h2 id=environment>Software and hardware</h2>",
              html_table(["item", "value"], [[k, str(v)] for k, v in environment_lines(run)]),
              "<h2 id=manifest>Manifest</h2>", html_table(["item", "value"], manifest_lines(run), table_id="manifest"),
              "</body></html>"]
    return "\n".join(p for p in parts if p) + "\n"


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
    parser.add_argument("--md", type=Path, required=True, help="output: report.md")
    parser.add_argument("--html", type=Path, required=True, help="output: self-contained report.html")
    report_guidance.add_arguments(parser)
    report_rounds.add_arguments(parser)
    ReportSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = ReportSettings.from_args(args)
    check(len(args.generations) == len(args.eval_metrics), "generations", "one file per --eval-metrics file",
          [str(p) for p in args.generations])
    check(not args.pairs or len(args.pairs) == len(args.eval_metrics), "pairs", "one file per --eval-metrics file",
          [str(p) for p in args.pairs])
    run = RunOutputs.load(args)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    md, page = report_guidance.extend(render_markdown(run, settings), render_html(run, settings, render_images(run)),
                                      run, args)  # training health and human A/B sections
    md, page = report_rounds.extend(md, page, run, args, md_table, html_table)  # on-policy DPO rounds
    args.md.write_text(md, encoding="utf-8")
    args.html.write_text(page, encoding="utf-8")
    print(f"wrote {args.md} and {args.html}")
