"""The report's figures, as PNG bytes base64-encoded for inlining (data: URIs) in report.html.

Every figure is drawn with matplotlib's Agg backend (no display needed) and saved without
a timestamp or software tag, so the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import io

CURVES = {
    "sft": ["loss", "mean_token_accuracy", "grad_norm"],
    "dpo": ["loss", "rewards/accuracies", "rewards/margins", "grad_norm"],
}
# Share-type metrics drawn on one 0-1 axis with their 95% intervals.
RATES = [
    ("implicit_reward_accuracy", "implicit-reward acc."),
    ("logp_accuracy", "log-prob acc."),
    ("logp_accuracy_normalized", "log-prob acc. / token"),
    ("judge_accuracy", "judge acc. (greedy)"),
    ("sampled_judge_accuracy", "judge acc. (sampled)"),
]
COLORS = {"base": "#8a8f98", "sft": "#3060a0", "dpo": "#c0502a"}
FALLBACK = ["#2a8a5a", "#8a2a8a", "#aa8a20"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _color(name: str, i: int) -> str:
    return COLORS.get(name, FALLBACK[i % len(FALLBACK)])


def training_curves(histories: dict[str, list[dict]]) -> dict[str, str]:
    """Step -> PNG of its logged training curves (loss, rewards/accuracies, margins, grad norm, ...)."""
    plt = _pyplot()
    images = {}
    for step, keys in CURVES.items():
        entries = [e for e in histories.get(step, []) if "loss" in e and "step" in e]
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
        images[step] = _png(fig)
    return images


def metric_intervals(evaluations: dict[str, dict], comparisons: list[dict]) -> str | None:
    """Rates per model with 95% intervals, the KL estimate +- 1.96 SE, and the win rates."""
    if not evaluations:
        return None
    plt = _pyplot()
    panels = 3 if comparisons else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.0), dpi=100,
                             gridspec_kw={"width_ratios": [2.2, 1, 1][:panels]})
    names = list(evaluations)
    ax = axes[0]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ev = evaluations[name]
        xs, ys, errs = [], [], [[], []]
        for j, (key, _) in enumerate(RATES):
            value = ev["metrics"].get(key)
            if value is None:
                continue
            interval = ev.get("intervals", {}).get(key)
            low, high = (interval["low"], interval["high"]) if interval else (value, value)
            xs.append(j - 0.4 + width * (i + 0.5))
            ys.append(value)
            errs[0].append(max(0.0, value - low))
            errs[1].append(max(0.0, high - value))
        ax.errorbar(xs, ys, yerr=errs, fmt="o", color=_color(name, i), label=name, capsize=3, markersize=4)
    ax.set_xticks(range(len(RATES)), [label for _, label in RATES], rotation=20, ha="right", fontsize=7)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("held-out rates, 95% intervals", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=7)

    ax = axes[1]
    for i, name in enumerate(names):
        metrics = evaluations[name]["metrics"]
        if metrics.get("kl_mean") is None:
            continue
        se = metrics.get("kl_se") or 0.0
        ax.errorbar([i], [metrics["kl_mean"]], yerr=[1.96 * se], fmt="o", color=_color(name, i), capsize=3)
        # Values written out: a KL of 0.1 next to one of 18 is invisible on a shared axis.
        ax.annotate(f"{metrics['kl_mean']:.3g} ± {se:.2g}", (i, metrics["kl_mean"]), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=7)
    ax.set_xticks(range(len(names)), [f"{n}\n‖ {evaluations[n].get('reference', '')}" for n in names], fontsize=7)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.margins(y=0.15)
    ax.set_title("KL(policy ‖ reference), ±1.96 SE", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=7)

    if comparisons:
        ax = axes[2]
        for i, comparison in enumerate(comparisons):
            for k, decoding in enumerate(("greedy", "sampled")):
                result = comparison[decoding]
                interval = result.get("interval") or {"low": result["win_rate"], "high": result["win_rate"]}
                y = i + (k - 0.5) * 0.3
                ax.errorbar([result["win_rate"]], [y],
                            xerr=[[result["win_rate"] - interval["low"]], [interval["high"] - result["win_rate"]]],
                            fmt="o" if decoding == "greedy" else "s", color=_color(comparison["model"], i),
                            capsize=3, markersize=4, label=decoding if i == 0 else None)
        ax.axvline(0.5, color="#999", linewidth=1, linestyle="--")
        ax.set_yticks(range(len(comparisons)), [f"{c['model']} vs {c['baseline']}" for c in comparisons], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, len(comparisons) - 0.4)
        ax.set_title("judge win rate, 95% intervals", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def margin_distributions(pairs: dict[str, list[dict]], beta_by_model: dict[str, float]) -> str | None:
    """Histogram of the per-pair implicit reward margins of every model that has a distinct reference."""
    shown = {name: [r["margin"] for r in rows] for name, rows in pairs.items() if any(r["margin"] for r in rows)}
    if not shown:
        return None
    import numpy as np

    plt = _pyplot()
    values = np.concatenate([np.asarray(v) for v in shown.values()])
    low, high = np.quantile(values, [0.005, 0.995])
    bins = np.linspace(min(low, 0.0), max(high, 0.0), 41)
    fig, ax = plt.subplots(figsize=(7.0, 2.8), dpi=100)
    for i, (name, margins) in enumerate(shown.items()):
        ax.hist(np.clip(margins, bins[0], bins[-1]), bins=bins, alpha=0.55, color=_color(name, i),
                label=f"{name} (β={beta_by_model.get(name, '?')}, n={len(margins)})")
    ax.axvline(0.0, color="#333", linewidth=1)
    ax.set_xlabel("β·[(log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)]", fontsize=8)
    ax.set_ylabel("test pairs", fontsize=8)
    ax.set_title("implicit reward margins on the held-out pairs (right of 0: chosen preferred)", fontsize=9)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
