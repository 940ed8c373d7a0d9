"""Step `report`: report.md and a self-contained report.html from a run's outputs.

Sections: summary (what DPO changed), evaluation metrics of every checkpoint side by side,
training curves (plots inline as PNG data URIs in the HTML), the data ledger, sample
generations side by side, each step's resolved settings, and the software and hardware
that ran. Reads only the files it is given; writes only the two reports.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from prefalign import report_guidance
from prefalign.records import load_records
from prefalign.settings import Settings, check

METRICS = [
    ("implicit_reward_accuracy", "implicit-reward accuracy (vs reference)", ".3f"),
    ("reward_margin_mean", "reward margin, mean", ".3f"),
    ("logp_accuracy", "log-prob accuracy", ".3f"),
    ("logp_accuracy_normalized", "log-prob accuracy, per token", ".3f"),
    ("judge_accuracy", "judge accuracy (greedy, task verifier)", ".3f"),
    ("generation_length_mean", "answer length, mean tokens", ".2f"),
    ("pairs", "test pairs scored", "d"),
    ("judged_prompts", "prompts judged", "d"),
]
CURVES = {
    "sft": ["loss", "mean_token_accuracy", "grad_norm"],
    "dpo": ["loss", "rewards/accuracies", "rewards/margins", "grad_norm"],
}


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
    datasets: list[dict]
    split: dict
    training: dict[str, dict]  # step -> metrics.json
    histories: dict[str, list[dict]]  # step -> TRL log entries
    base: dict
    environment: dict

    @classmethod
    def load(cls, args) -> "RunOutputs":
        def read(path):
            return json.loads(Path(path).read_text(encoding="utf-8"))

        evaluations = {}
        for path in args.eval_metrics:
            data = read(path)
            evaluations[data["model"]] = data
        generations = {}
        for name, path in zip(evaluations, args.generations):
            generations[name] = load_records(Path(path))
        return cls(
            evaluations=evaluations,
            generations=generations,
            datasets=[read(p) for p in args.dataset_stats],
            split=read(args.split_stats),
            training={"sft": read(args.sft_metrics), "dpo": read(args.dpo_metrics)},
            histories={"sft": load_records(args.sft_log), "dpo": load_records(args.dpo_log)},
            base=read(args.base_info),
            environment=read(args.environment),
        )


def fmt(value, spec: str) -> str:
    if value is None:
        return "n/a"
    return format(value, spec)


def shown(answer: str, limit: int = 40) -> str:
    """An answer as a table cell: escapes visible (a base model writes control bytes), cut short."""
    text = json.dumps(answer, ensure_ascii=False)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_lines(run: RunOutputs) -> list[str]:
    ev = {name: data["metrics"] for name, data in run.evaluations.items()}
    lines = []
    if "dpo" in ev:
        lines.append(
            f"DPO implicit-reward accuracy on {ev['dpo']['pairs']} held-out pairs: "
            f"{ev['dpo']['implicit_reward_accuracy']:.3f} (reward margin {ev['dpo']['reward_margin_mean']:.3f})."
        )
    if "dpo" in ev and "sft" in ev and ev["dpo"]["judge_accuracy"] is not None:
        lines.append(
            f"Judge accuracy (greedy answers scored by the task verifier): SFT {ev['sft']['judge_accuracy']:.3f}"
            f" -> DPO {ev['dpo']['judge_accuracy']:.3f}."
        )
    first = run.training["dpo"]["train"].get("first_loss")
    if first is not None and run.training["dpo"]["settings"].get("loss_type") == ["sigmoid"]:
        lines.append(f"DPO loss at step 1: {first:.4f} (ln 2 = 0.6931 is expected there: policy = reference).")
    elif first is not None:
        losses = " + ".join(run.training["dpo"]["settings"]["loss_type"])
        lines.append(f"DPO loss ({losses}) at step 1: {first:.4f}; at the end: {run.training['dpo']['train']['loss']:.4f}.")
    return lines


def metrics_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    names = list(run.evaluations)
    header = ["metric"] + [f"{n} (ref: {run.evaluations[n].get('reference', '')})".replace(" (ref: )", "")
                           for n in names]
    rows = [[label] + [fmt(run.evaluations[n]["metrics"].get(key), spec) for n in names]
            for key, label, spec in METRICS]
    return header, rows


def ledger_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "format", "in", "kept", "dropped", "dropped by reason"]
    rows = []
    for stats in run.datasets:
        reasons = ", ".join(f"{k} {v}" for k, v in stats["dropped_by_reason"].items()) or "-"
        rows.append([stats["dataset"], stats["format"], str(stats["in"]), str(stats["kept"]), str(stats["dropped"]),
                     reasons])
    split = run.split
    rows.append(["(merge)", "", str(split["in"]), str(split["kept"]), str(split["dropped"]),
                 ", ".join(f"{k} {v}" for k, v in split["dropped_by_reason"].items()) or "-"])
    return header, rows


def split_table(run: RunOutputs) -> tuple[list[str], list[list[str]]]:
    header = ["source", "train", "test", "duplicates across datasets"]
    rows = [[source, str(c.get("train", 0)), str(c.get("test", 0)), str(c.get("duplicate", 0))]
            for source, c in run.split["per_source"].items()]
    rows.append(["total", str(run.split["train"]), str(run.split["test"]), str(run.split["dropped"])])
    return header, rows


def generations_table(run: RunOutputs, limit: int) -> tuple[list[str], list[list[str]]]:
    names = list(run.generations)
    if not names or limit == 0:
        return [], []
    by_id = {n: {g["id"]: g for g in run.generations[n]} for n in names}
    first = run.generations[names[0]]
    header = ["prompt", "expected"] + names
    rows = []
    for g in first[:limit]:
        cells = [g["prompt"], g["expected"] or ""]
        for n in names:
            other = by_id[n].get(g["id"])
            cells.append("" if other is None else f"{shown(other['answer'])} {'✓' if other['correct'] else '✗'}")
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
        tables["eval"] = next(iter(run.evaluations.values()))["settings"]
    return tables


def plot_curves(run: RunOutputs) -> dict[str, str]:
    """Step -> PNG (base64) of its logged training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    for step, keys in CURVES.items():
        entries = [e for e in run.histories[step] if "loss" in e and "step" in e]
        if not entries:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.6), dpi=100)
        for ax, key in zip(axes, keys):
            points = [(e["step"], e[key]) for e in entries if key in e]
            ax.plot([p[0] for p in points], [p[1] for p in points], color="#3060a0", linewidth=1.4)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{step.upper()} training", fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        plt.close(fig)
        images[step] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return images


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


# ---------------------------------------------------------------- markdown

def md_table(header, rows) -> str:
    if not header:
        return "_none_\n"
    esc = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in esc]
    return "\n".join(lines) + "\n"


def render_markdown(run: RunOutputs, settings: ReportSettings) -> str:
    out = [f"# {settings.title}\n", "## Summary\n"]
    out += [f"- {line}" for line in summary_lines(run)]
    out += ["", "## Evaluation on the held-out split\n", md_table(*metrics_table(run))]
    out += ["## Training\n", "Curves are plotted in report.html.\n"]
    for step in ("sft", "dpo"):
        train = run.training[step]["train"]
        out.append(f"### {step.upper()}\n")
        out.append(md_table(["metric", "value"], [[k, fmt(v, ".4g") if isinstance(v, float) else str(v)]
                                                  for k, v in train.items()]))
    out += ["## Data ledger\n", md_table(*ledger_table(run)), "", md_table(*split_table(run))]
    out += ["## Sample generations (greedy)\n", md_table(*generations_table(run, settings.sample_generations))]
    out += ["## Resolved settings\n"]
    for step, values in settings_tables(run).items():
        out += [f"### {step}\n", md_table(["key", "value"], [[k, json.dumps(v)] for k, v in values.items()])]
    out += ["## Software and hardware\n", md_table(["item", "value"], [[k, str(v)] for k, v in environment_lines(run)])]
    return "\n".join(out)


# ---------------------------------------------------------------- html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d232b;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #d8dde3;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #d8dde3;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.5em 0}.summary li{margin:.2em 0}code{background:#f2f4f7;padding:0 .2em}
details{margin:.4em 0}
"""


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


def render_html(run: RunOutputs, settings: ReportSettings, images: dict[str, str]) -> str:
    title = html.escape(settings.title)
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>",
             f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<h1>{title}</h1>", "<h2 id=summary>Summary</h2><ul class=summary>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in summary_lines(run)]
    parts += ["</ul>", "<h2 id=evaluation>Evaluation on the held-out split</h2>",
              html_table(*metrics_table(run), table_id="summary-table"), "<h2 id=training>Training</h2>"]
    for step in ("sft", "dpo"):
        parts.append(f"<h3>{step.upper()}</h3>")
        if step in images:
            parts.append(f"<img alt='{step} training curves' src='data:image/png;base64,{images[step]}'>")
        train = run.training[step]["train"]
        parts.append(html_table(["metric", "value"], [[k, fmt(v, ".4g") if isinstance(v, float) else str(v)]
                                                      for k, v in train.items()]))
    parts += ["<h2 id=data>Data ledger</h2>", html_table(*ledger_table(run)), html_table(*split_table(run)),
              "<h2 id=generations>Sample generations (greedy)</h2>",
              html_table(*generations_table(run, settings.sample_generations)),
              "<h2 id=settings>Resolved settings</h2>"]
    for step, values in settings_tables(run).items():
        parts.append(f"<details open><summary>{html.escape(step)}</summary>"
                     + html_table(["key", "value"], [[k, json.dumps(v)] for k, v in values.items()]) + "</details>")
    parts += ["<h2 id=environment>Software and hardware</h2>",
              html_table(["item", "value"], [[k, str(v)] for k, v in environment_lines(run)]), "</body></html>"]
    return "\n".join(parts) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval-metrics", type=Path, nargs="+", required=True, help="evaluate outputs (JSON)")
    parser.add_argument("--generations", type=Path, nargs="+", required=True,
                        help="evaluate generations (JSONL), in the order of --eval-metrics")
    parser.add_argument("--dataset-stats", type=Path, nargs="+", required=True, help="normalize stats (JSON)")
    parser.add_argument("--split-stats", type=Path, required=True, help="split stats (JSON)")
    parser.add_argument("--sft-metrics", type=Path, required=True, help="sft metrics (JSON)")
    parser.add_argument("--sft-log", type=Path, required=True, help="sft log history (JSONL)")
    parser.add_argument("--dpo-metrics", type=Path, required=True, help="dpo metrics (JSON)")
    parser.add_argument("--dpo-log", type=Path, required=True, help="dpo log history (JSONL)")
    parser.add_argument("--base-info", type=Path, required=True, help="prefalign_base.json of the base model")
    parser.add_argument("--environment", type=Path, required=True, help="environment.json of the DPO step")
    parser.add_argument("--md", type=Path, required=True, help="output: report.md")
    parser.add_argument("--html", type=Path, required=True, help="output: self-contained report.html")
    report_guidance.add_arguments(parser)
    ReportSettings.add_arguments(parser)


def main(args: argparse.Namespace) -> None:
    settings = ReportSettings.from_args(args)
    check(len(args.generations) == len(args.eval_metrics), "generations", "one file per --eval-metrics file",
          [str(p) for p in args.generations])
    run = RunOutputs.load(args)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    md, page = report_guidance.extend(render_markdown(run, settings), render_html(run, settings, plot_curves(run)),
                                      run, args)  # training health and human A/B sections
    args.md.write_text(md, encoding="utf-8")
    args.html.write_text(page, encoding="utf-8")
    print(f"wrote {args.md} and {args.html}")
