"""The report's data section, from the normalize and split stats files.

`data_section(datasets, split)` builds the whole section: where every
raw row went (per dataset: rows read, kept, dropped by reason), the counts of every stage
of both steps, the mix per source (train, test and what the mix dropped), and length
histograms of the kept pairs (characters, and tokens where the token filter counted them).
The HTML draws the histograms as inline SVG, so report.html stays one self-contained file.
"""

from __future__ import annotations

import html as escape

from prefalign.report.document import Details, Heading, Section, Svg, Table, Text

FIELDS = ("prompt", "chosen", "rejected")
COLOURS = {"prompt": "#3060a0", "chosen": "#2e8b57", "rejected": "#c0504d"}


def reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def ledger_rows(datasets: list[dict], split: dict) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "format", "source", "rows read", "in", "kept", "dropped", "dropped by reason"]
    rows = [[s["dataset"], s["format"], s["file"], str(s.get("rows", s["in"])), str(s["in"]), str(s["kept"]),
             str(s["dropped"]), reasons(s["dropped_by_reason"])] for s in datasets]
    rows.append(["(mix)", "", "", "", str(split["in"]), str(split["kept"]), str(split["dropped"]),
                 reasons(split["dropped_by_reason"])])
    return header, rows


def stage_rows(datasets: list[dict], split: dict) -> tuple[list[str], list[list[str]]]:
    header = ["step", "stage", "unit", "in", "out", "dropped", "by reason"]
    rows = []
    for label, stats in [*((s["dataset"], s) for s in datasets), ("(mix)", split)]:
        for stage in stats.get("stages", []):
            out = str(stage["out"]) + (f" pairs from {stage['used']} {stage['unit']}s" if "used" in stage else "")
            rows.append([label, stage["stage"], stage["unit"], str(stage["in"]), out, str(stage["dropped"]),
                         reasons(stage["dropped_by_reason"])])
    return header, rows


def mix_rows(split: dict) -> tuple[list[str], list[list[str]]]:
    dropped = sorted({k for c in split["per_source"].values() for k in c} - {"train", "test"})
    header = ["source", "train", "test", *dropped]
    rows = [[source, str(c.get("train", 0)), str(c.get("test", 0)), *(str(c.get(k, 0)) for k in dropped)]
            for source, c in split["per_source"].items()]
    rows.append(["total", str(split["train"]), str(split["test"]),
                 *(str(split["dropped_by_reason"].get(k, 0)) for k in dropped)])
    return header, rows


def bin_labels(bins: list[int]) -> list[str]:
    return [f"{lo}-{hi - 1}" for lo, hi in zip(bins, bins[1:])] + [f"{bins[-1]}+"]


def histograms(stats: dict) -> list[tuple[str, dict]]:
    """(unit, {field: {"bins", "counts"}}) for characters and, when counted, tokens."""
    lengths = stats.get("lengths", {})
    out = []
    if all(f in lengths for f in FIELDS):
        out.append((lengths.get("unit", "characters"), {f: lengths[f] for f in FIELDS}))
    tokens = lengths.get("tokens")
    if tokens:
        out.append((tokens["unit"], {f: tokens[f] for f in FIELDS}))
    return out


def histogram_rows(hist: dict) -> tuple[list[str], list[list[str]]]:
    """Bins with a count in any field (the rest are empty rows)."""
    labels = bin_labels(hist["prompt"]["bins"])
    header = ["length", *FIELDS]
    rows = [[label, *(str(hist[f]["counts"][i]) for f in FIELDS)] for i, label in enumerate(labels)
            if any(hist[f]["counts"][i] for f in FIELDS)]
    return header, rows


def svg_histogram(title: str, hist: dict) -> str:
    """Grouped bars (prompt, chosen, rejected) per length bin, heights relative to the largest count."""
    counts = {f: hist[f]["counts"] for f in FIELDS}
    used = [i for i in range(len(counts["prompt"])) if any(counts[f][i] for f in FIELDS)]
    if not used:
        return f"<p><em>{escape.escape(title)}: no kept pairs</em></p>"
    shown = list(range(used[0], used[-1] + 1))
    labels = bin_labels(hist["prompt"]["bins"])
    top = max(counts[f][i] for f in FIELDS for i in shown)
    bar, gap, height, left, bottom = 7, 8, 90, 6, 34
    width = left + len(shown) * (3 * bar + gap) + 6
    # Inline SVG in HTML needs no xmlns; without it the page names no outside address at all.
    parts = [f"<svg width='{width}' height='{height + bottom + 18}' "
             f"role='img' aria-label='{escape.escape(title, quote=True)}'>",
             f"<text x='{left}' y='12' font-size='11'>{escape.escape(title)}</text>"]
    for k, i in enumerate(shown):
        x0 = left + k * (3 * bar + gap)
        for j, f in enumerate(FIELDS):
            h = round(height * counts[f][i] / top) if counts[f][i] else 0
            parts.append(f"<rect x='{x0 + j * bar}' y='{18 + height - h}' width='{bar - 1}' height='{h}' "
                         f"fill='{COLOURS[f]}'><title>{f} {labels[i]}: {counts[f][i]}</title></rect>")
        parts.append(f"<text x='{x0}' y='{18 + height + 12}' font-size='8' transform='rotate(30 {x0} "
                     f"{18 + height + 12})'>{labels[i]}</text>")
    parts.append("</svg>")
    return "".join(parts)


def data_section(datasets: list[dict], split: dict) -> Section:
    legend = " ".join(f"<span style='color:{c}'>&#9632;</span> {f}" for f, c in COLOURS.items())
    blocks = [Text("Every raw row is kept or dropped with a reason (rejects.jsonl); `in = kept + dropped` is checked "
                   "by the data steps."),
              Table(*ledger_rows(datasets, split)),
              Heading("Stages"), Table(*stage_rows(datasets, split)),
              Heading("The mix"), Table(*mix_rows(split)),
              Heading("Lengths of the kept pairs"), Svg(f"<p>{legend}</p>")]
    for stats in datasets:
        for unit, hist in histograms(stats):
            title = f"{stats['dataset']} ({unit})"
            header, rows = histogram_rows(hist)
            blocks += [Svg(svg_histogram(title, hist)), Details(title, Table(header, rows))]
    return Section("data", "Data ledger", blocks)
