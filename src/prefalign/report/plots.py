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
    """Rates per model with 95% intervals; the KL estimate +- 1.96 SE, one axis per model (SFT's KL from
    the base and DPO's from SFT differ by orders of magnitude); raw and length-controlled win rates."""
    if not evaluations:
        return None
    plt = _pyplot()
    names = list(evaluations)
    kl_names = [n for n in names if evaluations[n]["metrics"].get("kl_mean") is not None]
    ratios = [2.4] + [0.55] * len(kl_names) + ([1.2] if comparisons else [])
    fig, axes = plt.subplots(1, len(ratios), figsize=(sum(ratios) * 2.6 + 1.0, 3.0), dpi=100,
                             gridspec_kw={"width_ratios": ratios})
    axes = list(axes) if len(ratios) > 1 else [axes]
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
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=7)

    for k, name in enumerate(kl_names):
        ax = axes[1 + k]
        metrics = evaluations[name]["metrics"]
        se = metrics.get("kl_se") or 0.0
        i = names.index(name)
        ax.errorbar([0], [metrics["kl_mean"]], yerr=[1.96 * se], fmt="o", color=_color(name, i), capsize=3)
        ax.annotate(f"{metrics['kl_mean']:.3g}\n± {se:.2g}", (0, metrics["kl_mean"]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=7)
        ax.set_xticks([0], [f"{name}\n‖ {evaluations[name].get('reference', '')}"], fontsize=7)
        ax.set_xlim(-0.8, 0.8)
        ax.margins(y=0.35)
        ax.set_title("KL, nats" if k == 0 else " ", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(labelsize=7)

    if comparisons:
        ax = axes[-1]
        styles = [("greedy", "win_rate", "o"), ("greedy", "lc", "D"), ("sampled", "win_rate", "s"),
                  ("sampled", "lc", "^")]
        for i, comparison in enumerate(comparisons):
            for k, (decoding, kind, marker) in enumerate(styles):
                result = comparison[decoding]
                rate = result.get("lc", {}) if kind == "lc" else result
                if rate.get("win_rate") is None:
                    continue
                interval = rate.get("interval") or {"low": rate["win_rate"], "high": rate["win_rate"]}
                y = i + (k - 1.5) * 0.18
                ax.errorbar([rate["win_rate"]], [y],
                            xerr=[[rate["win_rate"] - interval["low"]], [interval["high"] - rate["win_rate"]]],
                            fmt=marker, color=_color(comparison["model"], i), capsize=3, markersize=4,
                            label=f"{decoding}{' LC' if kind == 'lc' else ''}" if i == 0 else None)
        ax.axvline(0.5, color="#999", linewidth=1, linestyle="--")
        ax.set_yticks(range(len(comparisons)), [f"{c['model']} vs {c['baseline']}" for c in comparisons], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, len(comparisons) - 0.4)
        ax.set_title("judge win rate (LC: length-controlled), 95%", fontsize=9)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def margin_distributions(pairs: dict[str, list[dict]], beta_by_model: dict[str, float]) -> str | None:
    """Histogram of the per-pair implicit reward margins of every model that has a distinct reference,
    one axis per model (SFT's margins against the base spread far wider than DPO's against SFT)."""
    shown = {name: [r["margin"] for r in rows] for name, rows in pairs.items() if any(r["margin"] for r in rows)}
    if not shown:
        return None
    import numpy as np

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 2.8), dpi=100, squeeze=False)
    for i, (ax, (name, margins)) in enumerate(zip(axes[0], shown.items())):
        low, high = np.quantile(np.asarray(margins), [0.005, 0.995])
        bins = np.linspace(min(low, 0.0), max(high, 0.0), 41)
        ax.hist(np.clip(margins, bins[0], bins[-1]), bins=bins, alpha=0.75, color=_color(name, i),
                label=f"{name} (β={beta_by_model.get(name, '?')}, n={len(margins)})")
        ax.axvline(0.0, color="#333", linewidth=1)
        ax.set_xlabel("β·[Δ log π/π_ref (chosen) − (rejected)]", fontsize=8)
        ax.set_ylabel("test pairs", fontsize=8)
        ax.set_title(f"{name}: implicit reward margins (right of 0: chosen preferred)", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
